// Command freshet is the all-in-one dev mode and the small tools:
//
//	freshet dev                 everything embedded, serving live features
//	freshet init [DIR]          a small working project to start from
//	freshet validate [PATH]     check feature definitions
//	freshet plan                compare definitions with the deployed ones
//	freshet config [SERVICE]    the settings table of each service and the demo
//	freshet kafka [--port P]    a standalone Kafka-protocol broker for tests
//	freshet demo                feed a running ingest (the compose demo)
//	freshet healthcheck URL     exit 0 when URL answers 2xx
//	freshet token new NAME SCOPES  a bearer token and its line of the tokens file
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
)

// tool is one command of freshet: its line in the usage, and what runs it.
type tool struct {
	app.Subcommand
	run func(args []string) error
}

// tools is every command, in the order the usage lists them.
var tools = []tool{
	{app.Subcommand{Name: "dev", About: "run Kafka (kfake), Redis (miniredis), ingest, featurize and serve in one process"}, dev},
	{app.Subcommand{Name: "init", About: "write a small working project to start from: freshet init [DIR]"}, initProject},
	{app.Subcommand{Name: "validate", About: "check feature definitions: freshet validate [PATH]"}, validate},
	{app.Subcommand{Name: "plan", About: "compare definitions with the deployed ones: what changes, what happens to state"}, plan},
	{app.Subcommand{Name: "config", About: "print the settings of every service and the demo as Markdown tables: freshet config [SERVICE]"}, printConfig},
	{app.Subcommand{Name: "kafka", About: "run a standalone in-memory Kafka-protocol broker (kfake), for tests"}, runKafka},
	{app.Subcommand{Name: "demo", About: "feed a running ingest: the example events moved to now, then a small live feed"}, demo},
	{app.Subcommand{Name: "healthcheck", About: "exit 0 when URL answers 2xx (for container healthchecks): freshet healthcheck URL"}, healthcheck},
	{app.Subcommand{Name: "token", About: "print a new bearer token for the HTTP APIs and its line of the tokens file: freshet token new NAME SCOPES"}, token},
}

// top is freshet's own usage: its commands, no flags.
func top() *app.Command {
	c := &app.Command{
		Flags: flag.NewFlagSet("freshet", flag.ContinueOnError),
		Usage: []string{"freshet COMMAND [flags]"},
		About: "The all-in-one dev mode and freshet's small tools. `freshet COMMAND --help` describes a command.",
	}
	for _, t := range tools {
		c.Commands = append(c.Commands, t.Subcommand)
	}
	return c
}

func main() { os.Exit(freshet(os.Args[1:])) }

// freshet runs a command line and returns the exit status.
func freshet(args []string) int {
	if len(args) == 0 {
		top().WriteUsage(os.Stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help":
		if len(rest) > 0 { // freshet help dev: the usage of dev
			return freshet([]string{rest[0], "--help"})
		}
		top().WriteUsage(os.Stdout)
		return 0
	case "-h", "-help", "--help":
		top().WriteUsage(os.Stdout)
		return 0
	}
	for _, t := range tools {
		if t.Name == name {
			err := t.run(rest)
			if app.ExitCode(err) == 1 { // help and usage errors are printed already
				fmt.Fprintf(os.Stderr, "freshet %s: %v\n", name, err)
			}
			return app.ExitCode(err)
		}
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	msg := fmt.Sprintf("freshet: unknown command %q", name)
	if s := config.Suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	fmt.Fprintf(os.Stderr, "%s\n\n", msg)
	top().WriteUsage(os.Stderr)
	return 2
}

// toolCommand is the command line of a freshet tool that reads no FRESHET_*
// variable; one that takes arguments sets its Positional.
func toolCommand(fs *flag.FlagSet, usage, about string) *app.Command {
	return &app.Command{Flags: fs, Usage: []string{usage}, About: about}
}
