// Command composeenv prints, for the end-to-end script, how to run the
// compose stack's freshet services as local processes: per instance (each
// replica is one), the exact environment (the image's and the service's)
// and command the stack gives it, as bash assignments to eval, changed only
// where a local process cannot be the same (see compose.Local). Each change
// is printed as a comment.
//
//	go run ./deploy/compose/composeenv -bin DIR \
//	    -addr kafka:9092=127.0.0.1:9092 -addr redis:6379=127.0.0.1:6379 \
//	    [-env FRESHET_TOPIC_PREFIX=run1.] [-f FILE]... [SERVICE...]
//
// Without services: every freshet service outside the profiles. For an
// instance NAME it prints compose_NAME_service, compose_NAME_env (an array
// for `env -i`), compose_NAME_cmd, compose_NAME_health and compose_NAME_url,
// and compose_instances lists the names.
//
//	go run ./deploy/compose/composeenv wait-group -brokers B -group G -members N
//
// waits until the consumer group G is stable with N members, each assigned
// partitions: the replicas started from the stack have settled, and events
// sent from then on are not redelivered by a rebalance.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/freshet-ml/freshet/deploy/compose"
	"github.com/freshet-ml/freshet/pipeline/config"
)

// pairs is a repeatable NAME=VALUE flag.
type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }

func (p pairs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want NAME=VALUE", s)
	}
	p[k] = v
	return nil
}

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "wait-group" {
		err = waitGroup(os.Args[2:], os.Stdout)
	} else {
		err = run(os.Args[1:], os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "composeenv:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("composeenv", flag.ContinueOnError)
	var files config.Strings
	fs.Var(&files, "f", "compose file, repeatable, later ones override (default deploy/compose/docker-compose.yml)")
	bin := fs.String("bin", "", "directory of the freshet binaries (required)")
	addrs, env := pairs{}, pairs{}
	fs.Var(addrs, "addr", "SERVICE:PORT=HOST:PORT: a local server standing in for a service of the stack, repeatable")
	fs.Var(env, "env", "NAME=VALUE: a setting given to every instance whose program accepts it, repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return fmt.Errorf("-bin is required")
	}
	if len(files) == 0 {
		files = config.Strings{filepath.Join("deploy", "compose", compose.File)}
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		return fmt.Errorf("binaries directory: %w", err)
	}
	p, err := compose.Load(context.Background(), nil, files...)
	if err != nil {
		return err
	}
	services := fs.Args()
	if len(services) == 0 {
		for _, s := range p.Services {
			if compose.IsFreshet(s) && len(s.Profiles) == 0 {
				services = append(services, s.Name)
			}
		}
		sort.Strings(services)
	}
	var held []net.Listener // every port stays taken until all are chosen
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	port := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	insts, err := compose.Local{Bin: absBin, Addrs: addrs, Env: env, Port: port}.Instances(p, services)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "# composeenv: %s, services %s\n", strings.Join(files, " with "), strings.Join(services, " "))
	var names []string
	for _, in := range insts {
		for _, c := range in.Changes {
			fmt.Fprintf(out, "# %s: %s\n", in.Name, c)
		}
		names = append(names, in.Name)
	}
	fmt.Fprintf(out, "compose_instances=(%s)\n", strings.Join(names, " "))
	for _, in := range insts {
		fmt.Fprintf(out, "compose_%s_service=%s\n", in.Name, quote(in.Service))
		fmt.Fprintf(out, "compose_%s_env=(%s)\n", in.Name, quoteAll(in.Env))
		fmt.Fprintf(out, "compose_%s_cmd=(%s)\n", in.Name, quoteAll(in.Command))
		fmt.Fprintf(out, "compose_%s_health=(%s)\n", in.Name, quoteAll(in.Health))
		fmt.Fprintf(out, "compose_%s_url=%s\n", in.Name, quote(in.URL))
	}
	return nil
}

// quote quotes s for bash: in single quotes, each single quote in s closed,
// escaped and reopened.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return strings.Join(q, " ")
}

// waitGroup is `composeenv wait-group`: it polls the group's description
// until it is stable with the expected members, each assigned partitions.
func waitGroup(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("composeenv wait-group", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "Kafka seed brokers, comma-separated host:port (required)")
	group := fs.String("group", "", "consumer group (required)")
	members := fs.Int("members", 1, "members the group must have")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" || *group == "" {
		return errors.New("wait-group: -brokers and -group are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(strings.Split(*brokers, ",")...), Timeout: 5 * time.Second}
	last := "no answer yet"
	for {
		res, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{*group}})
		switch {
		case err != nil:
			last = err.Error()
		case len(res.Groups) != 1:
			last = fmt.Sprintf("%d groups described", len(res.Groups))
		case res.Groups[0].Error != nil:
			last = res.Groups[0].Error.Error()
		default:
			g := res.Groups[0]
			var desc []string
			assigned := 0
			for _, m := range g.Members {
				var parts []string
				for _, t := range m.MemberAssignments.Topics {
					for _, p := range t.Partitions {
						parts = append(parts, fmt.Sprintf("%s/%d", t.Topic, p))
					}
				}
				if len(parts) > 0 {
					assigned++
				}
				desc = append(desc, fmt.Sprintf("%s: %s", m.ClientHost, strings.Join(parts, " ")))
			}
			last = fmt.Sprintf("state %s, %d member(s), %d with partitions", g.GroupState, len(g.Members), assigned)
			if g.GroupState == "Stable" && len(g.Members) == *members && assigned == *members {
				fmt.Fprintf(out, "consumer group %s stable: %d members (%s)\n", *group, *members, strings.Join(desc, "; "))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer group %s not stable with %d members after %s: %s", *group, *members, *timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
