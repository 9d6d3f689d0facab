package store

// marks.go owns the partition watermarks saved per consumer group and topic
// (marks.lua), and clearing saved state for a rebuild.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Mark is a partition's watermark (the highest event time seen on it) as of
// an offset: lateness is judged against it, so a consumer that takes over
// the partition must start from the mark its predecessor left, or it would
// judge redelivered events against a lower one.
type Mark struct {
	Offset int64 // the last offset of the batch it was saved with
	Time   int64 // the highest event time up to Offset, in ms
}

func (r *Redis) marksKey(group, topic string) string {
	return r.prefix + "_marks:" + group + ":" + topic
}

// LoadMarks implements Online: the saved marks of a topic's partitions for
// a consumer group, by partition, from one hash.
func (r *Redis) LoadMarks(ctx context.Context, group, topic string) (map[int]Mark, error) {
	h, err := r.client.HGetAll(ctx, r.marksKey(group, topic)).Result()
	if err != nil {
		return nil, fmt.Errorf("load watermarks of %s: %w", topic, err)
	}
	out := make(map[int]Mark, len(h))
	for f, v := range h {
		p, err1 := strconv.Atoi(f)
		o, t, ok := strings.Cut(v, ":")
		off, err2 := strconv.ParseInt(o, 10, 64)
		tm, err3 := strconv.ParseInt(t, 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || !ok {
			return nil, fmt.Errorf("load watermarks of %s: field %q=%q is not partition=offset:time", topic, f, v)
		}
		out[p] = Mark{Offset: off, Time: tm}
	}
	return out, nil
}

// SaveMarks implements Online: it records marks of a topic's partitions,
// never moving one back to an earlier offset (another consumer of the group
// may have got further after a rebalance), atomically in marks.lua.
func (r *Redis) SaveMarks(ctx context.Context, group, topic string, marks map[int]Mark) error {
	if len(marks) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(marks))
	for p, m := range marks {
		args = append(args, strconv.Itoa(p), strconv.FormatInt(m.Offset, 10)+":"+strconv.FormatInt(m.Time, 10))
	}
	if err := marksScript.Run(ctx, r.client, []string{r.marksKey(group, topic)}, args...).Err(); err != nil {
		return fmt.Errorf("save watermarks of %s: %w", topic, err)
	}
	return nil
}

// ClearMarks forgets a topic's saved marks for a consumer group, as a
// rebuild from the earliest offsets must.
func (r *Redis) ClearMarks(ctx context.Context, group, topic string) error {
	if err := r.client.Del(ctx, r.marksKey(group, topic)).Err(); err != nil {
		return fmt.Errorf("clear watermarks of %s: %w", topic, err)
	}
	return nil
}

// ClearView deletes every entity's state of a view's generation (see Gen)
// and returns how many keys went.
func (r *Redis) ClearView(ctx context.Context, view, gen string) (int64, error) {
	pattern := r.prefix + view + ":" + gen + ":*"
	var n atomic.Int64
	clear := func(ctx context.Context, c redis.UniversalClient) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One key per call: in a cluster the keys of a batch span slots.
			pipe := c.Pipeline()
			for _, k := range batch {
				pipe.Unlink(ctx, k)
			}
			_, err := pipe.Exec(ctx)
			n.Add(int64(len(batch)))
			batch = batch[:0]
			return err
		}
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return clear(ctx, c) })
	} else {
		err = clear(ctx, r.client)
	}
	if err != nil {
		return n.Load(), fmt.Errorf("clear view %s: %w", view, err)
	}
	return n.Load(), nil
}
