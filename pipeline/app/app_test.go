package app

import (
	"bytes"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCommonValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Common
		err  string
	}{
		{"ok", Common{Schemas: "s", LogLevel: "debug", LogFormat: "json"}, ""},
		{"no schemas", Common{LogLevel: "info", LogFormat: "text"}, "schemas:"},
		{"bad level", Common{Schemas: "s", LogLevel: "loud", LogFormat: "text"}, `log-level: "loud"`},
		{"bad format", Common{Schemas: "s", LogLevel: "info", LogFormat: "xml"}, `log-format: "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestLogger(t *testing.T) {
	var c Common
	c.RegisterFlags(flag.NewFlagSet("t", flag.ContinueOnError))
	c.LogFormat, c.LogLevel = "json", "warn"
	var b bytes.Buffer
	log := c.Logger(&b)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	require.NotContains(t, b.String(), "hidden")
	require.Contains(t, b.String(), `"msg":"shown","k":"v"`)
}
