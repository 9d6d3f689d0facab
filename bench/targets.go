package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// serveView is the view of 10 features that serve's figures read.
const serveView = "user_profile"

// newClient is the load generator's HTTP client: keep-alive connections,
// as many as requests in flight.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// target is something the load generator sends requests to.
type target struct {
	name string
	do   Request
	// badStatus counts answers with an unexpected HTTP status: the target
	// is broken, not merely slow.
	badStatus atomic.Int64
	// lastBad holds the first such answer.
	lastBad atomic.Pointer[string]
}

// statusError is an answer with an unexpected status.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

// httpTarget sends the request req(i) builds and reads the whole answer,
// which must be 200.
func httpTarget(name string, c *http.Client, req func(ctx context.Context, i int) (*http.Request, error)) *target {
	t := &target{name: name}
	t.do = func(ctx context.Context, i int) error {
		r, err := req(ctx, i)
		if err != nil {
			return err
		}
		resp, err := c.Do(r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			err := &statusError{resp.StatusCode, string(body)}
			if t.badStatus.Add(1) == 1 {
				s := err.Error()
				t.lastBad.Store(&s)
			}
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return t
}

// get is a GET of url(i).
func get(url func(i int) string) func(ctx context.Context, i int) (*http.Request, error) {
	return func(ctx context.Context, i int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url(i), nil)
	}
}

// post is a JSON POST of body(i) to url.
func post(url string, body func(i int) []byte) func(ctx context.Context, i int) (*http.Request, error) {
	return func(ctx context.Context, i int) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body(i)))
		if err == nil {
			r.Header.Set("Content-Type", "application/json")
		}
		return r, err
	}
}

// redisTarget reads one hash with go-redis: limit (a) of the single figure.
func redisTarget(rc *redis.Client, key func(i int) string) *target {
	return &target{name: "go-redis HGETALL", do: func(ctx context.Context, i int) error {
		return rc.HGetAll(ctx, key(i)).Err()
	}}
}

// redisBatchTarget reads n hashes in one pipeline: limit (a) of the batch
// figure.
func redisBatchTarget(rc *redis.Client, n int, key func(i, j int) string) *target {
	return &target{name: "go-redis pipelined HGETALL", do: func(ctx context.Context, i int) error {
		pipe := rc.Pipeline()
		for j := range n {
			pipe.HGetAll(ctx, key(i, j))
		}
		_, err := pipe.Exec(ctx)
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return err
	}}
}

// floor is limit (b): a bare net/http server in the harness that answers a
// lookup with one HGETALL through go-redis (a pipeline of them for a batch)
// and writes the hash as JSON. Nothing real over HTTP with one Redis round
// trip can beat it.
type floor struct {
	rc  *redis.Client
	key func(entity string) string
	srv *http.Server
	URL string
}

// startFloor serves the floor on a loopback port until Close.
func startFloor(rc *redis.Client, key func(entity string) string) (*floor, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("floor listener: %w", err)
	}
	f := &floor{rc: rc, key: key, URL: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /floor/{entity}", f.single)
	mux.HandleFunc("POST /floor", f.batch)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	return f, nil
}

// Close stops the floor server.
func (f *floor) Close() { _ = f.srv.Close() }

func (f *floor) single(w http.ResponseWriter, r *http.Request) {
	h, err := f.rc.HGetAll(r.Context(), f.key(r.PathValue("entity"))).Result()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h)
}

func (f *floor) batch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Entities []string `json:"entities"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pipe := f.rc.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(req.Entities))
	for i, e := range req.Entities {
		cmds[i] = pipe.HGetAll(r.Context(), f.key(e))
	}
	if _, err := pipe.Exec(r.Context()); err != nil && !errors.Is(err, redis.Nil) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := make([]map[string]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
