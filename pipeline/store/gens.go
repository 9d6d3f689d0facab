package store

// gens.go owns a view's generations: which keys hold the state of the
// layout featurize runs, whether that state is live or still being
// recomputed from Kafka (a catch-up), and where, per source partition, the
// catch-up hands over to the live path (its boundary).

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/freshet-ml/freshet/pipeline/aggregate"
)

// gensKey is the hash of every view's current generation, under the
// prefix: "<view>" is "<id> <fingerprint> <state>", "<view>#n" counts the
// generations made for it. One key, so Redis Cluster serves it from one
// node and adopt.lua is atomic.
const gensKey = "_gens"

// Generation states.
const (
	// GenLive is state that featurize keeps current: serve reads it.
	GenLive = "live"
	// GenCatchingUp is state being recomputed from the earliest retained
	// offsets: serve answers its features PENDING.
	GenCatchingUp = "catching_up"
)

// Gen is a view's generation: the state of one layout of it, under keys
// <prefix><view>:<ID>:<entity>. A layout that a view had before keeps its
// generation; a new one gets a new generation that starts catching up,
// whose ID is never used again, so a catch-up never lands on keys a
// retired generation left behind.
type Gen struct {
	View        string
	ID          string
	Fingerprint string
	State       string // GenLive or GenCatchingUp
}

// Live reports whether serve may read the generation.
func (g Gen) Live() bool { return g.State == GenLive }

// GenWant asks Adopt for the generation of one layout of a view.
type GenWant struct {
	View, Fingerprint string
	// Recompute says what a layout without a generation gets: a new
	// generation catching up (the view existed before with another
	// layout, so Kafka holds events its live path already passed), or,
	// when false, the generation named by the fingerprint itself, live
	// (a view new to the deployment, or state kept before generations
	// existed, which is under that name).
	Recompute bool
	// Renew makes a new live generation whatever there was (a rebuild
	// that recomputes the view from the earliest offsets itself).
	Renew bool
}

//go:embed adopt.lua
var adoptSource string

var adoptScript = redis.NewScript(adoptSource)

// Adopt returns the generation of each wanted layout, making it current:
// the generation a view has when its fingerprint is the same, else a new
// one (see GenWant). A view's earlier generation is retired by it: the
// featurize processes still writing it notice (Generations) and stop. It is
// atomic, so replicas starting together agree. The store's keys follow the
// generations returned (UseGens).
func (r *Redis) Adopt(ctx context.Context, want []GenWant) ([]Gen, error) {
	if len(want) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 4*len(want))
	for _, w := range want {
		mode := "keep"
		switch {
		case w.Renew:
			mode = "renew"
		case w.Recompute:
			mode = "recompute"
		}
		args = append(args, w.View, w.Fingerprint, mode)
	}
	res, err := adoptScript.Run(ctx, r.client, []string{r.prefix + gensKey}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("adopt generations: %w", err)
	}
	if len(res) != len(want) {
		return nil, fmt.Errorf("adopt generations: %d answers for %d views", len(res), len(want))
	}
	out := make([]Gen, len(want))
	for i, s := range res {
		g, err := parseGen(want[i].View, s)
		if err != nil {
			return nil, fmt.Errorf("adopt generations: %w", err)
		}
		out[i] = g
	}
	r.UseGens(out)
	return out, nil
}

// Generations returns every view's current generation, by view; none for a
// store no featurize recorded generations in (written before they existed,
// or by dev mode). It needs only HGETALL, so serve's read-only user may
// call it.
func (r *Redis) Generations(ctx context.Context) (map[string]Gen, error) {
	h, err := r.client.HGetAll(ctx, r.prefix+gensKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read generations: %w", err)
	}
	out := map[string]Gen{}
	for view, s := range h {
		if strings.HasSuffix(view, "#n") {
			continue
		}
		g, err := parseGen(view, s)
		if err != nil {
			return nil, fmt.Errorf("read generations: %w", err)
		}
		out[view] = g
	}
	return out, nil
}

func parseGen(view, s string) (Gen, error) {
	f := strings.Fields(s)
	if len(f) != 3 || (f[2] != GenLive && f[2] != GenCatchingUp) {
		return Gen{}, fmt.Errorf("view %s: generation %q is not \"<id> <fingerprint> <state>\"", view, s)
	}
	return Gen{View: view, ID: f[0], Fingerprint: f[1], State: f[2]}, nil
}

// genBook is what the store knows of the generations: the keys of each
// layout and whether serve may read them. Swapped whole, so reads never
// lock.
type genBook struct {
	// byLayout maps a view's layout to its generation.
	byLayout map[layoutKey]Gen
	// known: some generation was recorded. Before any was (a store from
	// before generations, dev mode), every layout reads and writes the
	// keys named by its fingerprint and is live.
	known bool
}

type layoutKey struct{ view, fingerprint string }

// UseGens makes the store's keys and reads follow gens: a layout with a
// generation uses its keys; serve calls it with Generations' answer as it
// changes.
func (r *Redis) UseGens(gens []Gen) {
	b := &genBook{byLayout: map[layoutKey]Gen{}, known: len(gens) > 0}
	for _, g := range gens {
		b.byLayout[layoutKey{g.View, g.Fingerprint}] = g
	}
	r.gens.Store(b)
}

// FollowGens implements Reader.
func (r *Redis) FollowGens(ctx context.Context) error {
	gens, err := r.Generations(ctx)
	if err != nil {
		return err
	}
	list := make([]Gen, 0, len(gens))
	for _, g := range gens {
		list = append(list, g)
	}
	r.UseGens(list)
	return nil
}

// GenOf returns the generation whose keys hold l's state, and false when
// generations are recorded but none for l (see genOf).
func (r *Redis) GenOf(l *aggregate.Layout) (Gen, bool) { return r.genOf(l) }

// genOf returns the generation of l: the one recorded, or, before any
// was, its fingerprint's, live. ok is false when generations are recorded
// but none for l (the deployed definitions have another layout of the
// view, or not the view).
func (r *Redis) genOf(l *aggregate.Layout) (Gen, bool) {
	b := r.gens.Load()
	if b == nil || !b.known {
		return Gen{View: l.View.Name, ID: l.Fingerprint, Fingerprint: l.Fingerprint, State: GenLive}, true
	}
	g, ok := b.byLayout[layoutKey{l.View.Name, l.Fingerprint}]
	return g, ok
}

// gensPointer is embedded in Redis.
type gensPointer = atomic.Pointer[genBook]

// boundaryKey is the hash of one generation's boundaries and catch-up
// progress: "b:<source>" is the last offset of the source partition that
// the catch-up applies (the live path applies the ones after it),
// "progress" what the catch-up last reported.
func (r *Redis) boundaryKey(g Gen) string { return r.prefix + "_gen:" + g.View + ":" + g.ID }

// ClaimBoundary sets the boundary of a source partition for generation g
// to offset, unless one is set, and returns the boundary: the catch-up
// applies the partition's events up to it, the live path those after it.
// Whoever claims first wins and every process then uses the same one, so
// each event is applied by exactly one of them.
func (r *Redis) ClaimBoundary(ctx context.Context, g Gen, source string, offset int64) (int64, error) {
	key, field := r.boundaryKey(g), "b:"+source
	pipe := r.client.Pipeline()
	pipe.HSetNX(ctx, key, field, offset)
	get := pipe.HGet(ctx, key, field)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("claim boundary of %s for view %s: %w", source, g.View, err)
	}
	b, err := strconv.ParseInt(get.Val(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("claim boundary of %s for view %s: %w", source, g.View, err)
	}
	return b, nil
}

// Boundaries returns the boundaries claimed for generation g, by source
// partition.
func (r *Redis) Boundaries(ctx context.Context, g Gen) (map[string]int64, error) {
	h, err := r.client.HGetAll(ctx, r.boundaryKey(g)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read boundaries of view %s: %w", g.View, err)
	}
	out := map[string]int64{}
	for f, v := range h {
		src, ok := strings.CutPrefix(f, "b:")
		if !ok {
			continue
		}
		b, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read boundaries of view %s: field %s: %w", g.View, f, err)
		}
		out[src] = b
	}
	return out, nil
}

// CatchUpProgress is what a catch-up reports, in GET /v1/views and in
// the metrics.
type CatchUpProgress struct {
	View       string `json:"view"`
	Generation string `json:"generation"`
	Partitions int    `json:"partitions"`
	// Done counts the partitions applied up to their boundary.
	Done int `json:"partitions_done"`
	// Remaining is how many events are left up to the boundaries (or, for
	// a partition with none yet, up to the live group's commits).
	Remaining int64 `json:"remaining_events"`
	// Applied counts the events applied so far by this process.
	Applied int64 `json:"applied_events"`
	// Rate is this process's events per second since its start.
	Rate float64 `json:"events_per_second"`
}

// Progress implements Reader. It reads with HGETALL, which serve's
// read-only user may run (the hash is small).
func (r *Redis) Progress(ctx context.Context, g Gen) (*CatchUpProgress, error) {
	h, err := r.client.HGetAll(ctx, r.boundaryKey(g)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read catch-up progress of view %s: %w", g.View, err)
	}
	s, ok := h["progress"]
	if !ok {
		return nil, nil
	}
	var p CatchUpProgress
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("read catch-up progress of view %s: %w", g.View, err)
	}
	return &p, nil
}

// SetProgress records the catch-up progress of g for serve's GET /v1/views.
func (r *Redis) SetProgress(ctx context.Context, g Gen, p CatchUpProgress) error {
	text, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("record catch-up progress of view %s: %w", g.View, err)
	}
	if err := r.client.HSet(ctx, r.boundaryKey(g), "progress", text).Err(); err != nil {
		return fmt.Errorf("record catch-up progress of view %s: %w", g.View, err)
	}
	return nil
}

var goLiveScript = redis.NewScript(`
local want = ARGV[2] .. " " .. ARGV[3] .. " "
local cur = redis.call("HGET", KEYS[1], ARGV[1])
if cur ~= want .. "catching_up" then return 0 end
redis.call("HSET", KEYS[1], ARGV[1], want .. "live")
return 1`)

// GoLive makes generation g live once its catch-up is complete. It reports
// false when g is no longer the view's generation (a later deploy retired
// it): nothing changes then.
func (r *Redis) GoLive(ctx context.Context, g Gen) (bool, error) {
	n, err := goLiveScript.Run(ctx, r.client, []string{r.prefix + gensKey}, g.View, g.ID, g.Fingerprint).Int()
	if err != nil {
		return false, fmt.Errorf("make view %s live: %w", g.View, err)
	}
	return n == 1, nil
}
