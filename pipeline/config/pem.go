package config

import (
	"crypto/x509"
	"os"
)

// pemCAs is what a CA setting expects.
const pemCAs = "a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)"

// CAPool reads the PEM file of CA certificates of setting (redis-ca,
// kafka-ca, …). A file that cannot be read or holds no PEM certificate is
// a *SettingError naming the setting.
func CAPool(setting, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &SettingError{Setting: setting, Value: path, Problem: "cannot be read: " + FileProblem(err), Expected: pemCAs}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, &SettingError{Setting: setting, Value: path, Problem: "holds no PEM certificate", Expected: pemCAs}
	}
	return pool, nil
}
