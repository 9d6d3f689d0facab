package testenv

import (
	"os"
	"strings"
	"testing"
)

// SecuredKafka is a real broker's secured listeners, as
// `scripts/kafka-local.sh start --sasl-ssl` exports them.
type SecuredKafka struct {
	// SASLBrokers is the SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256,
	// PLAIN), with a certificate signed by CA.
	SASLBrokers []string
	// CA is the PEM file of the CA of the broker's certificates.
	CA string
	// Username and PasswordFile are the SASL user's.
	Username, PasswordFile string
	// MTLSBrokers is an SSL listener that requires a client certificate;
	// ClientCert and ClientKey are one its CA signed. Empty when not
	// exported.
	MTLSBrokers           []string
	ClientCert, ClientKey string
}

// KafkaSASL returns the secured listeners named by
// FRESHET_TEST_KAFKA_SASL_BROKERS, FRESHET_TEST_KAFKA_SASL_CA,
// FRESHET_TEST_KAFKA_SASL_USERNAME and FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE
// (and the FRESHET_TEST_KAFKA_MTLS_BROKERS, FRESHET_TEST_KAFKA_CLIENT_CERT
// and FRESHET_TEST_KAFKA_CLIENT_KEY of the mTLS listener), and skips the
// test when they are not set: there is no in-process stand-in for a broker's
// TLS and SASL.
func KafkaSASL(tb testing.TB) SecuredKafka {
	tb.Helper()
	k := SecuredKafka{
		CA:           os.Getenv("FRESHET_TEST_KAFKA_SASL_CA"),
		Username:     os.Getenv("FRESHET_TEST_KAFKA_SASL_USERNAME"),
		PasswordFile: os.Getenv("FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE"),
		ClientCert:   os.Getenv("FRESHET_TEST_KAFKA_CLIENT_CERT"),
		ClientKey:    os.Getenv("FRESHET_TEST_KAFKA_CLIENT_KEY"),
	}
	brokers := os.Getenv("FRESHET_TEST_KAFKA_SASL_BROKERS")
	if brokers == "" || k.CA == "" || k.Username == "" || k.PasswordFile == "" {
		tb.Skip("FRESHET_TEST_KAFKA_SASL_BROKERS (and its CA, user and password file) not set: run eval \"$(scripts/kafka-local.sh start --sasl-ssl)\" for a SASL_SSL broker")
	}
	k.SASLBrokers = strings.Split(brokers, ",")
	if m := os.Getenv("FRESHET_TEST_KAFKA_MTLS_BROKERS"); m != "" {
		k.MTLSBrokers = strings.Split(m, ",")
	}
	return k
}
