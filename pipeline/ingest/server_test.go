package ingest

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/broker"
	"github.com/freshet-ml/freshet/pipeline/events"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/telemetry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// post sends body to h as a POST of event with the content type.
func post(h http.Handler, event, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/events/"+event, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type wantMessage struct {
	key, value string
	time       int64 // epoch ms
}

func TestPostEventsAccepted(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	const (
		a = `{"txn_id":"t1","user_id":"u_1","amount":12,"ts":"2024-05-30T00:00:02Z","extra":{"x":[1,2]}}`
		b = `{"ts":1717027259445,"user_id":"u_2","txn_id":"t2","amount":3.5,"items":2,"card_present":true,"merchant_id":"m_1"}`
		c = `{"txn_id":"t3","user_id":"u_1","amount":-1e-7,"ts":"2024-05-30T02:02:31.5+02:00","items":null}`
	)
	var (
		wantA = wantMessage{"u_1", `{"txn_id":"t1","user_id":"u_1","amount":12.0,"ts":1717027202000}`, 1717027202000}
		wantB = wantMessage{"u_2", `{"txn_id":"t2","user_id":"u_2","merchant_id":"m_1","amount":3.5,"items":2,"card_present":true,"ts":1717027259445}`, 1717027259445}
		wantC = wantMessage{"u_1", `{"txn_id":"t3","user_id":"u_1","amount":-1e-7,"ts":1717027351500}`, 1717027351500}
	)
	tests := []struct {
		name, contentType, body string
		want                    []wantMessage
	}{
		{"single object", "application/json", a, []wantMessage{wantA}},
		{"object with charset", "application/json; charset=utf-8", "\n  " + b + "\n", []wantMessage{wantB}},
		{"array", "application/json", "[" + a + ",\n" + b + " , " + c + "]", []wantMessage{wantA, wantB, wantC}},
		{"ndjson", "application/x-ndjson", a + "\r\n\n" + b + "\n  \n" + c, []wantMessage{wantA, wantB, wantC}},
		{"empty array", "application/json", " [ ] ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kafkaConfig(brokers)
			ensureTopics(t, cfg, reg)
			srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)

			rec := post(srv.Handler(), "transaction", tt.contentType, tt.body)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			require.JSONEq(t, fmt.Sprintf(`{"accepted": %d}`, len(tt.want)), rec.Body.String())

			// Every message is where murmur2 puts its key, and the
			// messages of one key keep the request's order.
			topic := cfg.Topic("transaction")
			parts := readTopic(t, cfg, topic)
			byKey := map[string][]wantMessage{}
			total := 0
			for p, msgs := range parts {
				for _, m := range msgs {
					require.Equal(t, topic, m.Topic)
					require.Equal(t, p, m.Partition)
					require.Equal(t, partitionOf(m.Key), m.Partition, "key %s", m.Key)
					byKey[string(m.Key)] = append(byKey[string(m.Key)], wantMessage{string(m.Key), string(m.Value), m.Time.UnixMilli()})
					total++
				}
			}
			require.Equal(t, len(tt.want), total)
			wantByKey := map[string][]wantMessage{}
			for _, w := range tt.want {
				wantByKey[w.key] = append(wantByKey[w.key], w)
			}
			require.Equal(t, wantByKey, byKey)
		})
	}
}

// rejected is a request that ingest refuses, publishing nothing.
type rejected struct {
	name, event, contentType, body string
	header                         http.Header // more request headers
	unknownLength                  bool        // sent without Content-Length
	maxBody                        int64       // 0: DefaultMaxBody
	maxEvents                      int         // 0: DefaultMaxEvents
	status                         int
	want                           string // JSON body; "" for any
}

// manyInvalid is NDJSON of 150 events, each with a string amount.
var manyInvalid = strings.Repeat(`{"txn_id":"t1","user_id":"u_1","amount":"12","ts":1717027202000}`+"\n", 150)

// rejectedRequests are requests refused whole: invalid events, unknown
// event types, wrong content types, malformed or oversized bodies.
func rejectedRequests() []rejected {
	const valid = `{"txn_id":"t1","user_id":"u_1","amount":12.5,"ts":1717027202000}`
	return []rejected{
		{
			name: "invalid among valid", event: "transaction", contentType: "application/json",
			body:   "[" + valid + `,{"txn_id":"t2","user_id":"u_2","amount":"12.5","ts":1717027202000},` + valid + `,{"txn_id":"t4","amount":1.0,"ts":1717027202000}]`,
			status: http.StatusUnprocessableEntity,
			want: `{"error":"2 of 4 events are invalid","details":[
				{"index":1,"field":"amount","error":"expected float, got string"},
				{"index":3,"field":"user_id","error":"required field is missing"}]}`,
		},
		{
			name: "malformed ndjson line", event: "transaction", contentType: "application/x-ndjson",
			body:   valid + "\n" + `{"txn_id": "t2",}` + "\n" + valid,
			status: http.StatusUnprocessableEntity,
			want:   `{"error":"1 of 3 events are invalid","details":[{"index":1,"error":"invalid JSON: invalid character '}' looking for beginning of object key string at offset 16"}]}`,
		},
		{
			name: "details capped at 100", event: "transaction", contentType: "application/x-ndjson",
			body: manyInvalid, status: http.StatusUnprocessableEntity,
		},
		{
			name: "unknown event", event: "refund", contentType: "application/json", body: valid,
			status: http.StatusNotFound, want: `{"error":"unknown event type \"refund\"; event types: transaction"}`,
		},
		{
			name: "body too large", event: "transaction", contentType: "application/json",
			body: "[" + strings.Repeat(valid+",", 20) + valid + "]", maxBody: 1000,
			status: http.StatusRequestEntityTooLarge, want: `{"error":"request body of 1366 bytes exceeds 1000 bytes (max-body)"}`,
		},
		{
			name: "too many events", event: "transaction", contentType: "application/x-ndjson",
			body: strings.Repeat(valid+"\n", 3), maxEvents: 2,
			status: http.StatusRequestEntityTooLarge, want: `{"error":"more than 2 events in one request: split it (max-events)"}`,
		},
		{
			name: "body too large, chunked", event: "transaction", contentType: "application/json",
			body: "[" + strings.Repeat(valid+",", 20) + valid + "]", maxBody: 1000, unknownLength: true,
			status: http.StatusRequestEntityTooLarge, want: `{"error":"request body exceeds 1000 bytes"}`,
		},
		{
			name: "unknown event with a huge name", event: strings.Repeat("x", 100_000), contentType: "application/json", body: valid,
			status: http.StatusNotFound, want: `{"error":"unknown event type \"` + strings.Repeat("x", 100) + `…\"; event types: transaction"}`,
		},
		{
			name: "gzip", event: "transaction", contentType: "application/json", body: "\x1f\x8b",
			header: http.Header{"Content-Encoding": {"gzip"}}, status: http.StatusUnsupportedMediaType,
			want: `{"error":"unsupported Content-Encoding \"gzip\": send the body uncompressed"}`,
		},
		{
			name: "latin1", event: "transaction", contentType: "application/json; charset=latin1", body: valid,
			status: http.StatusUnsupportedMediaType, want: `{"error":"unsupported charset \"latin1\": send UTF-8 (JSON is UTF-8)"}`,
		},
		{
			name: "text/plain", event: "transaction", contentType: "text/plain", body: valid,
			status: http.StatusUnsupportedMediaType,
			want:   `{"error":"unsupported Content-Type \"text/plain\": use application/json or application/x-ndjson"}`,
		},
		{
			name: "no content type", event: "transaction", body: valid,
			status: http.StatusUnsupportedMediaType,
			want:   `{"error":"Content-Type must be application/json or application/x-ndjson"}`,
		},
		{
			name: "malformed array", event: "transaction", contentType: "application/json",
			body: "[" + valid + ",", status: http.StatusBadRequest,
			want: `{"error":"malformed body: array element 1: invalid JSON: unexpected end of input"}`,
		},
		{
			name: "not an object", event: "transaction", contentType: "application/json",
			body: `"hello"`, status: http.StatusBadRequest,
			want: `{"error":"malformed body: expected a JSON object or an array of objects, got string"}`,
		},
		{
			name: "empty body", event: "transaction", contentType: "application/json",
			body: " \n", status: http.StatusBadRequest,
			want: `{"error":"malformed body: empty body: expected a JSON object"}`,
		},
		{
			name: "ndjson line not an object", event: "transaction", contentType: "application/x-ndjson",
			body: valid + "\n\n[1]\n", status: http.StatusUnprocessableEntity,
			want: `{"error":"1 of 2 events are invalid","details":[{"index":1,"error":"expected a JSON object, got array"}]}`,
		},
	}
}

func TestPostEventsRejected(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	for _, tt := range rejectedRequests() {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kafkaConfig(brokers)
			ensureTopics(t, cfg, reg)
			maxBody := tt.maxBody
			if maxBody == 0 {
				maxBody = DefaultMaxBody
			}
			maxEvents := cmp.Or(tt.maxEvents, DefaultMaxEvents)
			srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: maxBody, MaxEvents: maxEvents, Kafka: cfg}, nil)

			req := httptest.NewRequest(http.MethodPost, "/v1/events/"+tt.event, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			if tt.unknownLength {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			if tt.want != "" {
				require.JSONEq(t, tt.want, rec.Body.String())
			}
			require.Equal(t, make([]int64, testPartitions), endOffsets(t, cfg, cfg.Topic("transaction")),
				"nothing may be published")
		})
	}
	t.Run("details capped at 100 holds the first 100", func(t *testing.T) {
		cfg := kafkaConfig(brokers)
		srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)
		rec := post(srv.Handler(), "transaction", "application/x-ndjson", manyInvalid)
		require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
		var body struct {
			Error   string
			Details []Detail
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Equal(t, "150 of 150 events are invalid", body.Error)
		require.Len(t, body.Details, maxDetails)
		for i, d := range body.Details {
			require.Equal(t, Detail{Index: i, Field: "amount", Error: "expected float, got string"}, d)
		}
	})
}

// TestPostEventsImplausibleTime: an event time in the wrong unit, or far
// ahead of the clock, is refused with 422 naming the value and the likely
// unit, with every other bad field of the event, and nothing is published.
func TestPostEventsImplausibleTime(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg, Times: events.DefaultTimeRule()}, nil)

	now := time.Now()
	micros := now.UnixMicro()
	seconds := now.Unix()
	yearAhead := now.AddDate(1, 0, 0).UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`[{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":%d},`+
		`{"txn_id":"t2","user_id":"u_2","amount":2.5,"ts":%d},`+
		`{"txn_id":"t3","user_id":"u_3","amount":1.5,"ts":%d},`+
		`{"txn_id":"t4","user_id":"u_4","amount":"x","ts":%q}]`, now.UnixMilli(), micros, seconds, yearAhead)
	rec := post(srv.Handler(), "transaction", "application/json", body)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	var got struct {
		Error   string
		Details []Detail
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Equal(t, "3 of 4 events are invalid", got.Error)
	require.Len(t, got.Details, 4, "one detail per bad field: %s", rec.Body.String())
	want := []struct {
		index int
		field string
		has   []string
	}{
		{1, "ts", []string{fmt.Sprint(micros), "ahead of the clock", "looks like epoch microseconds: use milliseconds or RFC 3339"}},
		{2, "ts", []string{fmt.Sprint(seconds), "before 2000-01-01", "looks like epoch seconds"}},
		{3, "amount", []string{"expected float, got string"}},
		{3, "ts", []string{"days ahead of the clock", "--max-clock-skew"}},
	}
	for i, w := range want {
		d := got.Details[i]
		require.Equal(t, w.index, d.Index, "detail %d: %+v", i, d)
		require.Equal(t, w.field, d.Field, "detail %d: %+v", i, d)
		for _, h := range w.has {
			require.Contains(t, d.Error, h, "detail %d", i)
		}
	}
	require.Equal(t, make([]int64, testPartitions), endOffsets(t, cfg, cfg.Topic("transaction")), "nothing may be published")

	// Within the allowed skew is fine.
	rec = post(srv.Handler(), "transaction", "application/json",
		fmt.Sprintf(`{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":%d}`, now.Add(time.Minute).UnixMilli()))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
}

// TestPostEventsSaysWhatWillBeLate: a 202 says how many of the accepted
// events featurize will drop as late, judged against the partitions' newest
// event times (read from the topic, then raised by every publish).
func TestPostEventsSaysWhatWillBeLate(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	cfg := kafkaConfig(brokers)
	ensureTopics(t, cfg, reg)
	now := time.Now()
	// Already in the topic, from another producer: u_1 at now.
	require.NoError(t, newPublisher(t, cfg).Publish(context.Background(), []events.Event{
		decode(t, reg, fmt.Sprintf(`{"txn_id":"a","user_id":"u_1","amount":1.0,"ts":%d}`, now.UnixMilli())),
	}))
	srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg, Times: events.DefaultTimeRule()}, nil)
	require.NoError(t, srv.RefreshMarks(context.Background()))

	post1 := func(user string, ts time.Time) map[string]any {
		rec := post(srv.Handler(), "transaction", "application/json",
			fmt.Sprintf(`{"txn_id":"t","user_id":%q,"merchant_id":"m_1","amount":1.0,"ts":%d}`, user, ts.UnixMilli()))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		var body map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		return body
	}
	// 2h behind u_1's partition: late for user_spend (1h), not for
	// merchant_activity (24h).
	body := post1("u_1", now.Add(-2*time.Hour))
	require.Equal(t, float64(1), body["late"], "%v", body)
	require.Contains(t, body["warning"], "user_spend: 1, max_lateness 1h")
	require.NotContains(t, body["warning"], "merchant_activity")
	// 30 minutes behind: on time, and the answer is the plain one.
	require.Equal(t, map[string]any{"accepted": float64(1)}, post1("u_1", now.Add(-30*time.Minute)))
	// Another partition, empty so far: on time; its mark is now 3 days ago,
	// so the next event 2 days before that is late for both views.
	other := ""
	for i := 2; other == ""; i++ {
		if u := fmt.Sprintf("u_%d", i); partitionOf([]byte(u)) != partitionOf([]byte("u_1")) {
			other = u
		}
	}
	require.Equal(t, map[string]any{"accepted": float64(1)}, post1(other, now.Add(-72*time.Hour)))
	body = post1(other, now.Add(-120*time.Hour))
	require.Equal(t, float64(1), body["late"], "%v", body)
	require.Contains(t, body["warning"], "merchant_activity: 1, max_lateness 1d")
}

func TestPostEventsKafkaDown(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig([]string{closedAddr(t)})
	cfg.WriteTimeout = time.Second
	w := cfg.NewWriter()
	w.MaxAttempts = 1
	t.Cleanup(func() { _ = w.Close() })
	srv := NewServer(reg, NewPublisher(cfg, w), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)

	rec := post(srv.Handler(), "transaction", "application/json", `{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	var body struct{ Error, Warning string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.True(t, strings.HasPrefix(body.Error, "kafka unavailable: "), body.Error)
	// Kafka may have taken part of a failed write: the answer says what a
	// retry does, by the event type's id (the example's is txn_id).
	require.Contains(t, body.Warning, "featurize skips a second event with the same txn_id within 1h")
	noID := *reg.Events["transaction"]
	noID.ID = ""
	require.Contains(t, retryWarning(&noID), "declares no id field, so featurize will count them twice")

	// Readiness says so too.
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
}

func TestRun(t *testing.T) {
	brokers := testenv.Kafka(t)
	reg := testenv.Registry(t)
	cfg := kafkaConfig(brokers)
	srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = srv.Run(ctx, l)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + l.Addr().String()

	// get fails t, which may be the CollectT of one attempt of
	// EventuallyWithT: require's FailNow must not end another goroutine
	// than the test's.
	get := func(t require.TestingT, path string) int {
		res, err := http.Get(base + path)
		require.NoError(t, err)
		defer res.Body.Close()
		_, err = io.Copy(io.Discard, res.Body)
		require.NoError(t, err)
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, get(t, "/healthz"))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, http.StatusOK, get(c, "/readyz"))
	}, 30*time.Second, 20*time.Millisecond, "Run creates the topics")

	res, err := http.Post(base+"/v1/events/transaction", "application/json",
		strings.NewReader(`{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`))
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusAccepted, res.StatusCode, string(b))
	require.JSONEq(t, `{"accepted":1}`, string(b))

	var total int64
	for _, end := range endOffsets(t, cfg, cfg.Topic("transaction")) {
		total += end
	}
	require.EqualValues(t, 1, total)

	cancel()
	<-done
	require.NoError(t, runErr)
}

func TestRunRefusesEventsUntilTopicsExist(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig([]string{closedAddr(t)})
	srv := NewServer(reg, newPublisher(t, cfg), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, l) }()
	t.Cleanup(cancel)
	base := "http://" + l.Addr().String()

	// Serving starts at once, whatever Kafka does.
	var status int
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		res, err := http.Get(base + "/healthz")
		require.NoError(c, err)
		require.NoError(c, res.Body.Close())
		status = res.StatusCode
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, status, "the first answer")

	res, err := http.Post(base+"/v1/events/transaction", "application/json",
		strings.NewReader(`{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`))
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	require.JSONEq(t, `{"error":"kafka unavailable: topics are being created"}`, string(b))

	cancel()
	require.NoError(t, <-done)
}

func TestConfig(t *testing.T) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var def Config
	def.RegisterFlags(fs)
	require.Equal(t, ":8081", def.HTTPAddr)
	require.EqualValues(t, 16<<20, def.MaxBody)
	require.Equal(t, "freshet.events.", def.Kafka.TopicPrefix)
	require.NoError(t, def.Validate())

	tests := []struct {
		name   string
		change func(*Config)
		err    string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no address", func(c *Config) { c.HTTPAddr = "" }, "http-addr: an address to listen on is required, e.g. :8081"},
		{"no port", func(c *Config) { c.HTTPAddr = "localhost" }, `http-addr: "localhost" is not [host]:port`},
		{"zero body", func(c *Config) { c.MaxBody = 0 }, "max-body: 0, must be a positive number of bytes"},
		{"bad kafka", func(c *Config) { c.Kafka.Partitions = 0 }, `partitions: "0" is less than 1; expected a whole number of at least 1, e.g. 6`},
		{"negative skew", func(c *Config) { c.Times.MaxAhead = -time.Minute }, `max-clock-skew: "-1m0s" is negative; expected a duration of 0 or more, e.g. 5m`},
		{"no events", func(c *Config) { c.MaxEvents = 0 }, `max-events: 0, must be at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
			var c Config
			c.RegisterFlags(fs)
			tt.change(&c)
			err := c.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.err)
		})
	}

	// The flags set the fields.
	fs = flag.NewFlagSet("ingest", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-http-addr", "127.0.0.1:9000", "-max-body", "1024", "-max-events", "7", "-kafka-brokers", "k1:9092,k2:9092"}))
	require.Equal(t, Config{HTTPAddr: "127.0.0.1:9000", MaxBody: 1024, MaxEvents: 7, Kafka: broker.Config{
		Brokers: []string{"k1:9092", "k2:9092"}, TopicPrefix: "freshet.events.", Partitions: 6, Replication: 1,
		BatchTimeout: 2 * time.Millisecond, WriteTimeout: 10 * time.Second,
	}, Times: events.DefaultTimeRule()}, c)
}

// TestMetrics: accepted and rejected events are counted by event type and
// reason on the API's own GET /metrics, and a Kafka write's messages carry
// the trace context and the acceptance time.
func TestMetrics(t *testing.T) {
	reg := testenv.Registry(t)
	ctx := context.Background()
	tel, shutdown, err := telemetry.Setup(ctx, "ingest-test")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shutdown(ctx) })
	cfg := kafkaConfig(testenv.Kafka(t))
	ensureTopics(t, cfg, reg)
	w := cfg.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	h := NewServer(reg, NewPublisher(cfg, w, WithTelemetry(tel)), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil, WithTelemetry(tel)).Handler()

	ok := `{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}`
	bad := `{"txn_id":"t2","user_id":"u_1","amount":"1.5","ts":1717027202000}`
	require.Equal(t, http.StatusAccepted, post(h, "transaction", "application/json", "["+ok+","+ok+"]").Code)
	require.Equal(t, http.StatusUnprocessableEntity, post(h, "transaction", "application/json", "["+ok+","+bad+","+ok+"]").Code)
	require.Equal(t, http.StatusNotFound, post(h, "nope", "application/json", ok).Code)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	for _, line := range []string{
		`freshet_ingest_events_accepted_total{event="transaction"} 2`,
		`freshet_ingest_events_rejected_total{event="transaction",reason="invalid"} 1`,
		`freshet_ingest_events_rejected_total{event="transaction",reason="batch_invalid"} 2`,
		`freshet_ingest_kafka_write_events_sum{topic="` + cfg.Topic("transaction") + `"} 2`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="404",http_route="/v1/events/{event}"} 1`,
	} {
		require.Contains(t, rec.Body.String(), line)
	}
	require.NotContains(t, rec.Body.String(), "nope", "an unknown event type is no label value")

	msgs := readTopic(t, cfg, cfg.Topic("transaction"))[partitionOf([]byte("u_1"))]
	require.Len(t, msgs, 2)
	m := msgs[0]
	c := telemetry.HeaderCarrier{Headers: &m.Headers}
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, c.Get("traceparent"))
	at, ok2 := telemetry.IngestTime(m.Headers)
	require.True(t, ok2)
	require.WithinDuration(t, time.Now(), at, time.Minute)
}

// TestRefusedBeforeTheBody: a Content-Length over max-body is refused from
// the headers, so a client asking Expect: 100-continue never sends its
// body, and a wrong route or method gets a JSON error like every other
// answer.
func TestRefusedBeforeTheBody(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig([]string{closedAddr(t)})
	w := cfg.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	srv := NewServer(reg, NewPublisher(cfg, w), Config{MaxBody: DefaultMaxBody, Kafka: cfg}, nil)
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpx.Serve(ctx, l, srv.Handler(), time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	conn, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /v1/events/transaction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, "the first answer is the 413, not 100 Continue")
	require.JSONEq(t, `{"error":"request body of 10000000000 bytes exceeds 16777216 bytes (max-body)"}`, string(b))

	for _, tc := range []struct{ method, path, allow, want string }{
		{"POST", "/healthz", "GET, HEAD", `{"error":"method POST not allowed on /healthz; use GET, HEAD"}`},
		{"GET", "/v1/events/transaction", "POST", `{"error":"method GET not allowed on /v1/events/transaction; use POST"}`},
		{"GET", "/v2/nothing", "", `{"error":"no route GET /v2/nothing"}`},
	} {
		req, err := http.NewRequest(tc.method, "http://"+l.Addr().String()+tc.path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.JSONEq(t, tc.want, string(b), "%s %s", tc.method, tc.path)
		require.Equal(t, tc.allow, res.Header.Get("Allow"))
	}
}

// TestPostEventsOversizeKey: an event whose message would exceed Kafka's
// limit is refused before publishing, naming it, and a long key is said to
// count twice (it is the message key and in the value).
func TestPostEventsOversizeKey(t *testing.T) {
	reg := testenv.Registry(t)
	cfg := kafkaConfig([]string{closedAddr(t)})
	w := cfg.NewWriter()
	t.Cleanup(func() { _ = w.Close() })
	srv := NewServer(reg, NewPublisher(cfg, w), Config{MaxBody: DefaultMaxBody, MaxEvents: DefaultMaxEvents, Kafka: cfg}, nil)
	user := strings.Repeat("u", 600_000) // under the 1 MiB limit alone, over it twice
	body := `{"txn_id":"t1","user_id":"u_1","amount":1.5,"ts":1717027202000}` + "\n" +
		`{"txn_id":"t2","user_id":"` + user + `","amount":1.5,"ts":1717027202000}` + "\n"
	rec := post(srv.Handler(), "transaction", "application/x-ndjson", body)
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
	var got struct {
		Error   string
		Details []Detail
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Equal(t, "1 of 2 events exceed the 1048576-byte message limit", got.Error)
	require.Len(t, got.Details, 1)
	require.Equal(t, 1, got.Details[0].Index)
	require.Contains(t, got.Details[0].Error, "(its user_id of 600000 bytes counts twice: it is the message key and in the value)")
}
