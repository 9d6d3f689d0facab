package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// The ACL SETUSER lines of docs/operations.md are run here as users of the
// test's own on the test servers (a single one and, when given, a cluster),
// with the key pattern moved to the test's prefix: featurize's user must be
// able to do everything featurize does, and every command it is given must
// be needed; serve's must read and nothing more.

// aclRules returns the rules of a user's ACL SETUSER line in
// docs/operations.md.
func aclRules(t *testing.T, user string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.RepoRoot(t), "docs", "operations.md"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ACL SETUSER "+user+" "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("docs/operations.md has no ACL SETUSER %s line", user)
	return nil
}

// aclServer is a test server on which users can be set: an admin client,
// and the URL of freshet's store on it, less the user.
type aclServer struct {
	admin redis.UniversalClient
	url   func(user, password string) string
}

func aclServers(t *testing.T, fn func(t *testing.T, s aclServer)) {
	t.Run("redis", func(t *testing.T) {
		u, c := testenv.Redis(t)
		if err := c.Do(context.Background(), "ACL", "WHOAMI").Err(); err != nil {
			t.Skipf("the test Redis has no ACL (%v)", err)
		}
		host := strings.SplitN(u, "/", 4)[2] // redis://host:port/0
		fn(t, aclServer{admin: c, url: func(user, pw string) string { return "redis://" + user + ":" + pw + "@" + host + "/0" }})
	})
	t.Run("cluster", func(t *testing.T) {
		c, ok := testenv.RedisCluster(t)
		if !ok {
			t.Skip("FRESHET_TEST_REDIS_CLUSTER is not set (scripts/redis-local.sh start cluster)")
		}
		seed := strings.Split(os.Getenv("FRESHET_TEST_REDIS_CLUSTER"), ",")[0]
		fn(t, aclServer{admin: c, url: func(user, pw string) string { return "redis+cluster://" + user + ":" + pw + "@" + seed }})
	})
}

// onEveryNode runs a command on every node of s (ACL is per node).
func (s aclServer) onEveryNode(t *testing.T, args ...any) {
	t.Helper()
	ctx := context.Background()
	if cc, ok := s.admin.(*redis.ClusterClient); ok {
		require.NoError(t, cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Do(ctx, args...).Err()
		}))
		return
	}
	require.NoError(t, s.admin.Do(ctx, args...).Err())
}

// user sets a user of the test's own with rules, its key pattern moved from
// freshet:* to prefix*, and returns the store opened as it.
func (s aclServer) user(t *testing.T, rules []string, prefix string) (*Redis, string) {
	t.Helper()
	return s.open(t, rules, prefix, false)
}

// reader is user for a process that only reads (serve): opened as serve's
// prologue opens it.
func (s aclServer) reader(t *testing.T, rules []string, prefix string) (*Redis, string) {
	t.Helper()
	return s.open(t, rules, prefix, true)
}

func (s aclServer) open(t *testing.T, rules []string, prefix string, readOnly bool) (*Redis, string) {
	t.Helper()
	name := strings.TrimSuffix(testenv.Unique("freshet-acl-test-"), ".")
	pw := fmt.Sprintf("pw-%x", rand.Uint64())
	args := []any{"ACL", "SETUSER", name}
	for _, r := range rules {
		switch {
		case strings.HasPrefix(r, ">"):
			r = ">" + pw
		case strings.HasSuffix(r, "~freshet:*"):
			r = strings.TrimSuffix(r, "freshet:*") + prefix + "*"
		}
		args = append(args, r)
	}
	s.onEveryNode(t, args...)
	t.Cleanup(func() { s.onEveryNode(t, "ACL", "DELUSER", name) })
	c := Config{URL: s.url(name, pw), Prefix: prefix}
	require.NoError(t, c.Validate())
	open := c.Open
	if readOnly {
		open = c.OpenReader
	}
	r, err := open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, name
}

// denied lists what ACL LOG recorded as refused to a user, on every node:
// "command:info", "key:...".
func (s aclServer) denied(t *testing.T, user string) []string {
	t.Helper()
	var (
		mu  sync.Mutex // ForEachShard reads the nodes concurrently
		out []string
	)
	read := func(ctx context.Context, c redis.UniversalClient) error {
		entries, err := c.Do(ctx, "ACL", "LOG", "128").Slice()
		if err != nil {
			return err
		}
		for _, e := range entries {
			m := map[string]string{}
			switch e := e.(type) {
			case map[any]any: // RESP3
				for k, v := range e {
					m[fmt.Sprint(k)] = fmt.Sprint(v)
				}
			case []any: // RESP2
				for i := 0; i+1 < len(e); i += 2 {
					m[fmt.Sprint(e[i])] = fmt.Sprint(e[i+1])
				}
			}
			if m["username"] == user {
				mu.Lock()
				out = append(out, m["reason"]+":"+m["object"])
				mu.Unlock()
			}
		}
		return nil
	}
	ctx := context.Background()
	if cc, ok := s.admin.(*redis.ClusterClient); ok {
		require.NoError(t, cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return read(ctx, c) }))
	} else {
		require.NoError(t, read(ctx, s.admin))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// featurizeDoes runs everything featurize asks of the store.
func featurizeDoes(t *testing.T, r *Redis) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, r.CheckWriter(ctx))
	l := testLayout(t)
	s := stream(t, l, rand.New(rand.NewPCG(5, 5)), 150)
	applied, _ := applyInBatches(t, r, l, s, []int{30, 100})
	require.Equal(t, len(s), applied)
	requireStateMatches(t, r, l, s)
	require.NoError(t, r.SaveMarks(ctx, "g", "topic", map[int]Mark{1: {Offset: 9, Time: 10}}))
	marks, err := r.LoadMarks(ctx, "g", "topic")
	require.NoError(t, err)
	require.Len(t, marks, 1)
	require.NoError(t, r.ClearMarks(ctx, "g", "topic"))
	n, err := r.ClearView(ctx, l.View.Name, l.Fingerprint)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	require.NoError(t, r.Ping(ctx))
	require.NotEmpty(t, r.watch.seen, "INFO answered: restarts are noticed")
	gens, err := r.Adopt(ctx, []GenWant{{View: l.View.Name, Fingerprint: "f0", Recompute: true}})
	require.NoError(t, err)
	b, err := r.ClaimBoundary(ctx, gens[0], "topic/0", 41)
	require.NoError(t, err)
	require.Equal(t, int64(41), b)
	require.NoError(t, r.SetProgress(ctx, gens[0], CatchUpProgress{View: l.View.Name, Done: 1}))
	live, err := r.GoLive(ctx, gens[0])
	require.NoError(t, err)
	require.True(t, live)
}

// serveDoes runs everything serve asks of the store about generations.
func serveDoes(t *testing.T, r *Redis, view string) {
	t.Helper()
	ctx := context.Background()
	gens, err := r.Generations(ctx)
	require.NoError(t, err)
	require.Contains(t, gens, view)
	p, err := r.Progress(ctx, gens[view])
	require.NoError(t, err)
	require.Equal(t, 1, p.Done)
	require.NoError(t, r.FollowGens(ctx))
}

func TestACLLinesAreSufficient(t *testing.T) {
	aclServers(t, func(t *testing.T, s aclServer) {
		prefix := testenv.Unique("freshet-acl-test:")
		w, wname := s.user(t, aclRules(t, "freshet-featurize"), prefix)
		featurizeDoes(t, w)
		require.Empty(t, s.denied(t, wname), "featurize's user is refused nothing")

		ro, roname := s.reader(t, aclRules(t, "freshet-serve"), prefix)
		ctx := context.Background()
		require.NoError(t, ro.CheckReader(ctx))
		l := testLayout(t)
		st := stream(t, l, rand.New(rand.NewPCG(6, 6)), 50)
		applyInBatches(t, w, l, st, nil)
		requireStateMatches(t, ro, l, st)
		serveDoes(t, ro, l.View.Name)
		err := ro.CheckWriter(ctx)
		require.ErrorContains(t, err, "may not load featurize's scripts (SCRIPT LOAD): NOPERM")
		require.Equal(t, []string{"command:script|load"}, s.denied(t, roname),
			"serve's user is refused only the writer check's SCRIPT LOAD: a reader asks no INFO")
	})
}

// TestACLLinesAreNecessary: without any one of featurize's or serve's
// commands, their check fails naming it (ASKING aside, which only a slot
// migration needs; CLUSTER SLOTS on a cluster only).
func TestACLLinesAreNecessary(t *testing.T) {
	aclServers(t, func(t *testing.T, s aclServer) {
		_, cluster := s.admin.(*redis.ClusterClient)
		for _, role := range []string{"freshet-featurize", "freshet-serve"} {
			rules := aclRules(t, role)
			for i, rule := range rules {
				clusterOnly := rule == "+cluster|slots" || rule == "+command"
				if !strings.HasPrefix(rule, "+") || rule == "+asking" || (clusterOnly && !cluster) {
					continue
				}
				t.Run(role+" without "+rule, func(t *testing.T) {
					less := slices.Delete(slices.Clone(rules), i, i+1)
					r, name := s.open(t, less, testenv.Unique("freshet-acl-test:"), role == "freshet-serve")
					check := r.CheckWriter
					if role == "freshet-serve" {
						check = r.CheckReader
					}
					err := check(context.Background())
					t.Log(err)
					cmd := strings.TrimPrefix(rule, "+")
					require.Contains(t, s.denied(t, name), "command:"+cmd, "the server refused it")
					if rule == "+command" {
						return // the cluster client works without, asking again before every command
					}
					require.Error(t, err)
					require.ErrorContains(t, err, "docs/operations.md")
				})
			}
		}
	})
}
