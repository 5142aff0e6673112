package daemon

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// eventsKept is how many past events `events --since` can replay.
const eventsKept = 1024

// Events is the daemon's event broker: a ring of recent events and live subscribers.
type Events struct {
	mu   sync.Mutex
	ring []events.Message
	next int
	full bool
	subs map[chan events.Message]struct{}
}

func newEvents() *Events {
	return &Events{ring: make([]events.Message, eventsKept), subs: map[chan events.Message]struct{}{}}
}

// Publish records an event and hands it to every subscriber; a subscriber that has fallen
// more than its buffer behind loses events rather than stalling the daemon.
func (e *Events) Publish(m events.Message) {
	now := time.Now()
	if m.TimeNano == 0 {
		m.Time = now.Unix()
		m.TimeNano = now.UnixNano()
	}
	if m.Scope == "" {
		m.Scope = "local"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ring[e.next] = m
	e.next = (e.next + 1) % len(e.ring)
	if e.next == 0 {
		e.full = true
	}
	for ch := range e.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// Subscribe returns the past events (oldest first) and a channel of the events to come;
// cancel ends the subscription.
func (e *Events) Subscribe() (past []events.Message, ch <-chan events.Message, cancel func()) {
	c := make(chan events.Message, 256)
	e.mu.Lock()
	if e.full {
		past = append(past, e.ring[e.next:]...)
	}
	past = append(past, e.ring[:e.next]...)
	e.subs[c] = struct{}{}
	e.mu.Unlock()
	return past, c, func() {
		e.mu.Lock()
		delete(e.subs, c)
		e.mu.Unlock()
	}
}

// Listeners is the number of subscribers (info's NEventsListener).
func (e *Events) Listeners() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// containerEvent publishes a container event with Docker's attributes (name, image, labels).
func (d *Daemon) containerEvent(c *Container, action events.Action, extra map[string]string) {
	if c.Namespace != DefaultNamespace {
		return // the Docker API's events are of its own containers
	}
	attrs := map[string]string{"name": trimSlash(c.Name), "image": c.ImageName}
	for k, v := range c.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	d.events.Publish(events.Message{
		Type:   events.ContainerEventType,
		Action: action,
		Actor:  events.Actor{ID: c.ID, Attributes: attrs},
	})
}

// Event publishes an event of another type (image, volume, network).
func (d *Daemon) Event(typ events.Type, action events.Action, id string, attrs map[string]string) {
	d.events.Publish(events.Message{Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}})
}

func trimSlash(name string) string {
	if len(name) > 0 && name[0] == '/' {
		return name[1:]
	}
	return name
}
