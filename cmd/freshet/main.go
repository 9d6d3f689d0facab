// Command freshet is the all-in-one dev mode and the small tools:
//
//	freshet dev                 everything embedded, serving live features
//	freshet validate [PATH]     check feature definitions
//	freshet config [SERVICE]    the settings table of each service
//	freshet kafka [--port P]    a standalone Kafka-protocol broker for tests
//	freshet demo                feed a running ingest (the compose demo)
//	freshet healthcheck URL     exit 0 when URL answers 2xx
package main

import (
	"fmt"
	"os"
)

const usage = `usage: freshet COMMAND [flags]

commands:
  dev        run Kafka (kfake), Redis (miniredis), ingest, featurize and serve in one process
  validate   check feature definitions: freshet validate [PATH]
  config     print the settings of every service as a Markdown table
  kafka      run a standalone in-memory Kafka-protocol broker (kfake), for tests
  demo       feed a running ingest: the example events moved to now, then a small live feed
  healthcheck URL   exit 0 when URL answers 2xx (for container healthchecks)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev":
		err = dev(args)
	case "validate":
		err = validate(args)
	case "config":
		err = printConfig(args)
	case "kafka":
		err = runKafka(args)
	case "demo":
		err = demo(args)
	case "healthcheck":
		err = healthcheck(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "freshet: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "freshet %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
