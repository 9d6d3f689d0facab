package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"URL", "URL", 0},
		{"ULR", "URL", 1}, // a swap
		{"URL", "URI", 1},
		{"REDISURL", "REDIS_URL", 1},
		{"BATCH_WAIT", "BATCH_WIAT", 1},
		{"KAFKA_BROKER", "KAFKA_BROKERS", 1},
		{"ABC", "", 3},
		{"GROUP", "GROUP_ID", 3},
		{"CA", "ABC", 3}, // optimal string alignment: no edit of a swapped pair
	} {
		require.Equal(t, tc.want, distance(tc.a, tc.b), "%s → %s", tc.a, tc.b)
		require.Equal(t, tc.want, distance(tc.b, tc.a), "%s → %s", tc.b, tc.a)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"FRESHET_REDIS_URL", "FRESHET_REDIS_PREFIX", "FRESHET_BATCH_WAIT", "FRESHET_BATCH_SIZE",
		"FRESHET_KAFKA_BROKERS", "FRESHET_GROUP_ID", "FRESHET_LOG_LEVEL", "FRESHET_HTTP_ADDR", "FRESHET_REDIS_PORT"}
	for _, tc := range []struct{ name, want string }{
		{"FRESHET_REDIS_ULR", "FRESHET_REDIS_URL"},
		{"FRESHET_REDIS_URI", "FRESHET_REDIS_URL"},
		{"FRESHET_REDISURL", "FRESHET_REDIS_URL"},
		{"freshet_redis_url", "FRESHET_REDIS_URL"}, // case
		{"FRESHET_KAFKA_BROKER", "FRESHET_KAFKA_BROKERS"},
		{"FRESHET_BATCH_WIAT", "FRESHET_BATCH_WAIT"},
		{"FRESHET_LOGLEVEL", "FRESHET_LOG_LEVEL"},
		{"FRESHET_HTTP_ADR", "FRESHET_HTTP_ADDR"},
		{"FRESHET_REDIS_POR", "FRESHET_REDIS_PORT"},
		{"FRESHET_GROUP", ""},       // three edits in five letters: not a typo
		{"FRESHET_TOPIC", ""},       // nothing near
		{"FRESHET_KAFKA_HOSTS", ""}, // a different word
		{"FRESHET_BATCH_SIZ", "FRESHET_BATCH_SIZE"},
		{"FRESHET_X", ""},
	} {
		require.Equal(t, tc.want, Suggest(tc.name, known), tc.name)
	}
	// Ties go to the candidate that sorts first, whatever the order given.
	require.Equal(t, "FRESHET_AB", Suggest("FRESHET_AX", []string{"FRESHET_AC", "FRESHET_AB"}))
	require.Equal(t, "FRESHET_AB", Suggest("FRESHET_AX", []string{"FRESHET_AB", "FRESHET_AC"}))
	require.Equal(t, "", Suggest("FRESHET_AX", nil))

	// Names of views and features: one edit per four letters.
	for _, tc := range []struct {
		name  string
		names []string
		want  string
	}{
		{"user_spendd", []string{"merchant_activity", "user_spend"}, "user_spend"},
		{"usre_spend", []string{"merchant_activity", "user_spend"}, "user_spend"},  // a swap is one edit
		{"txn_count_1", []string{"txn_count_10m", "txn_count_1h"}, "txn_count_1h"}, // the nearest, not the first
		{"abc", []string{"xyz"}, ""},
		{"ab", []string{"cd"}, ""},       // as far as the name is long
		{"x", []string{"y", "xy"}, "xy"}, // "y" shares nothing with "x"
		{"é", []string{"e"}, ""},         // runes, not bytes
		{"zzz", nil, ""},
	} {
		require.Equal(t, tc.want, Suggest(tc.name, tc.names), tc.name)
	}
}

func TestUnknown(t *testing.T) {
	known := []string{"FRESHET_REDIS_URL", "FRESHET_KAFKA_BROKERS", "FRESHET_TEST_REDIS_URL"}
	for _, tc := range []struct {
		name    string
		environ []string
		want    []UnknownVariable
	}{
		{"none", []string{"PATH=/bin", "HOME=/root"}, nil},
		{"known", []string{"FRESHET_REDIS_URL=redis://h:6379/0", "FRESHET_TEST_REDIS_URL=x"}, nil},
		{"misspelled", []string{"FRESHET_REDIS_ULR=redis://:secret@h:6379/0", "FRESHET_KAFKA_BROKERS=k:9092"},
			[]UnknownVariable{{Name: "FRESHET_REDIS_ULR", Suggestion: "FRESHET_REDIS_URL"}}},
		{"sorted, once each", []string{"FRESHET_ZZZ=1", "FRESHET_KAFKA_BROKER=k:9092", "FRESHET_ZZZ=2"},
			[]UnknownVariable{{Name: "FRESHET_KAFKA_BROKER", Suggestion: "FRESHET_KAFKA_BROKERS"}, {Name: "FRESHET_ZZZ"}}},
		{"only the prefix", []string{"freshet_x=1", "MY_FRESHET_REDIS_ULR=1", "FRESHET_=1"},
			[]UnknownVariable{{Name: "FRESHET_"}}},
		{"empty value", []string{"FRESHET_REDIS_ULR="}, []UnknownVariable{{Name: "FRESHET_REDIS_ULR", Suggestion: "FRESHET_REDIS_URL"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Unknown(tc.environ, known))
		})
	}
}

func TestUnknownVariableString(t *testing.T) {
	require.Equal(t, "FRESHET_REDIS_ULR is not a freshet setting; did you mean FRESHET_REDIS_URL?",
		UnknownVariable{Name: "FRESHET_REDIS_ULR", Suggestion: "FRESHET_REDIS_URL"}.String())
	require.Equal(t, "FRESHET_ZZZ is not a freshet setting (`freshet config` lists the settings)",
		UnknownVariable{Name: "FRESHET_ZZZ"}.String())
}
