// Command kafkaproduce writes raw messages to a Kafka topic as a producer
// other than ingest would: no validation, the Java client's murmur2
// partitioner, the message time the clock's. The end-to-end script uses it
// to put events with implausible times where only featurize can catch
// them.
//
//	kafkaproduce -brokers host:port -topic T FILE   # FILE: KEY<TAB>VALUE per line
//
// A secured Kafka takes the services' TLS and SASL flags (-kafka-tls,
// -kafka-ca, -kafka-sasl, -kafka-username, -kafka-password-file, ...), or
// the variables of the same names (FRESHET_KAFKA_TLS, ...).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/config"
)

func main() {
	brokers := flag.String("brokers", "localhost:9092", "Kafka seed brokers, comma-separated")
	topic := flag.String("topic", "", "topic to write to")
	var security broker.Security
	security.RegisterFlags(flag.CommandLine)
	// Only the Kafka settings come from FRESHET_* variables: -brokers and
	// -topic say what this run does.
	local := map[string]bool{"brokers": true, "topic": true}
	if _, err := config.Read(flag.CommandLine, os.Args[1:], config.ReadOptions{Lookup: os.LookupEnv, Local: local}); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaproduce:", err)
		os.Exit(2)
	}
	if err := security.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaproduce:", err)
		os.Exit(2)
	}
	if *topic == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kafkaproduce -brokers host:port -topic T FILE (KEY<TAB>VALUE per line)")
		os.Exit(2)
	}
	if err := run(strings.Split(*brokers, ","), security, *topic, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaproduce:", err)
		os.Exit(1)
	}
}

func run(brokers []string, security broker.Security, topic, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var msgs []kafka.Message
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		key, value, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			return fmt.Errorf("%s:%d: want KEY<TAB>VALUE", path, line)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: []byte(value), Time: time.Now()})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: security.Transport()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		_ = w.Close()
		return fmt.Errorf("write %d messages to %s: %w", len(msgs), topic, err)
	}
	fmt.Printf("kafkaproduce: %d messages written to %s\n", len(msgs), topic)
	return w.Close()
}
