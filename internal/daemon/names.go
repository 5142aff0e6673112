package daemon

import (
	"crypto/rand"
	"math/big"
	"strconv"
)

// Generated container names are adjective_surname, as Docker's are; the surnames are of
// people who shaped computing and science.
var (
	adjectives = []string{
		"agile", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "daring", "eager",
		"fair", "fancy", "fervent", "gentle", "glad", "happy", "hardy", "humble", "jolly", "keen",
		"kind", "lively", "loyal", "lucid", "merry", "mighty", "modest", "neat", "nimble", "noble",
		"patient", "plucky", "proud", "quick", "quiet", "rapid", "ready", "serene", "sharp", "shy",
		"sleek", "smart", "steady", "stoic", "sunny", "swift", "tender", "tidy", "upbeat", "vivid",
		"warm", "wise", "witty", "zealous",
	}
	surnames = []string{
		"allen", "babbage", "backus", "bell", "boole", "carson", "cerf", "clarke", "codd", "curie",
		"dijkstra", "einstein", "engelbart", "euler", "faraday", "fermi", "feynman", "franklin",
		"gauss", "goldberg", "hamilton", "hopper", "hypatia", "jackson", "johnson", "kahn",
		"kepler", "knuth", "lamarr", "lamport", "liskov", "lovelace", "maxwell", "mccarthy",
		"meitner", "mirzakhani", "newton", "noether", "pascal", "perlman", "ritchie", "sammet",
		"shannon", "sinoussi", "thompson", "torvalds", "turing", "wilson", "wozniak", "yalow",
	}
)

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		panic(err)
	}
	return list[n.Int64()]
}

// randomName returns a name; with suffix, a digit is appended (after collisions).
func randomName(suffix bool) string {
	n := pick(adjectives) + "_" + pick(surnames)
	if suffix {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		n += strconv.FormatInt(d.Int64(), 10)
	}
	return n
}
