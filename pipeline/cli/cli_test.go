package cli

import (
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// TestContractVariables checks that the settings the issue and the README
// name exist on the services that need them, under their exact names.
func TestContractVariables(t *testing.T) {
	want := map[string][]string{
		"ingest":    {"FRESHET_SCHEMAS", "FRESHET_KAFKA_BROKERS", "FRESHET_HTTP_ADDR", "FRESHET_TOPIC_PREFIX", "FRESHET_PARTITIONS", "FRESHET_MAX_BODY"},
		"featurize": {"FRESHET_SCHEMAS", "FRESHET_KAFKA_BROKERS", "FRESHET_REDIS_URL", "FRESHET_HTTP_ADDR", "FRESHET_TOPIC_PREFIX", "FRESHET_GROUP_ID", "FRESHET_PARTITIONS"},
		"serve":     {"FRESHET_SCHEMAS", "FRESHET_REDIS_URL", "FRESHET_HTTP_ADDR", "FRESHET_MAX_ENTITIES"},
	}
	defaults := map[string]map[string]string{
		"ingest":    {"FRESHET_HTTP_ADDR": ":8081", "FRESHET_TOPIC_PREFIX": "freshet.events.", "FRESHET_PARTITIONS": "6", "FRESHET_KAFKA_BROKERS": "localhost:9092", "FRESHET_MAX_BODY": "16777216"},
		"featurize": {"FRESHET_HTTP_ADDR": ":8082", "FRESHET_GROUP_ID": "freshet-featurize", "FRESHET_REDIS_URL": "redis://localhost:6379/0"},
		"serve":     {"FRESHET_HTTP_ADDR": ":8080", "FRESHET_MAX_ENTITIES": "10000"},
	}
	sets := FlagSets()
	require.Len(t, sets, 3)
	for svc, vars := range want {
		have := map[string]config.Setting{}
		for _, s := range config.Table(sets[svc]) {
			have[s.Env] = s
		}
		for _, v := range vars {
			require.Contains(t, have, v, "%s lacks %s", svc, v)
		}
		for v, def := range defaults[svc] {
			require.Equal(t, def, have[v].Default, "%s default of %s", svc, v)
		}
	}
}

func TestEverySettingIsDocumented(t *testing.T) {
	for svc, fs := range FlagSets() {
		fs.VisitAll(func(f *flag.Flag) {
			require.NotEmpty(t, strings.TrimSpace(f.Usage), "%s --%s has no usage text", svc, f.Name)
		})
	}
}

func TestDefaultsValidate(t *testing.T) {
	i, _ := NewIngest()
	f, _ := NewFeaturize()
	s, _ := NewServe()
	for _, vs := range [][]interface{ Validate() error }{
		{&i.Common, &i.Ingest}, {&f.Common, &f.Featurize, &f.Store}, {&s.Common, &s.Serve, &s.Store},
	} {
		for _, v := range vs {
			require.NoError(t, v.Validate())
		}
	}
}
