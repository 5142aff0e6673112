// Command udpecho is a tiny UDP echo server and client for network tests (busybox's nc has
// no UDP in Debian's build): `udpecho -listen :53` answers every datagram with
// "echo: <datagram>"; `udpecho -send host:port message` sends one datagram and prints the
// answer, retrying for a few seconds.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to serve on")
	send := flag.String("send", "", "address to send to")
	flag.Parse()
	switch {
	case *listen != "":
		c, err := net.ListenPacket("udp4", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				os.Exit(1)
			}
			c.WriteTo(append([]byte("echo: "), buf[:n]...), from)
		}
	case *send != "":
		msg := flag.Arg(0)
		for i := 0; i < 20; i++ {
			c, err := net.Dial("udp4", *send)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			c.Write([]byte(msg))
			buf := make([]byte, 2048)
			n, err := c.Read(buf)
			c.Close()
			if err == nil {
				fmt.Println(string(buf[:n]))
				return
			}
		}
		fmt.Fprintln(os.Stderr, "no answer")
		os.Exit(1)
	default:
		flag.Usage()
		os.Exit(2)
	}
}
