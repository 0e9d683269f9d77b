package config

import (
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"strings"
)

// TLSConfig loads the certificate and key and returns a server TLS
// configuration (TLS 1.2 and later).
//
// Ciphers is the original's OpenSSL cipher string. The names in it that
// stand for a TLS 1.2 suite Go considers secure (tls.CipherSuites) are
// honoured in that order; everything else (suites Go lacks or deems
// insecure, keywords such as "AES" or "kEDH+AESGCM", "!" exclusions) is
// skipped without error, and a string naming no usable suite leaves Go's
// defaults. TLS 1.3 suites are not configurable in Go. HonorCipherOrder
// and DHParam are accepted and ignored: Go always chooses the suite
// itself and does not offer finite-field DHE.
func (s *SSL) TLSConfig() (*tls.Config, error) {
	pair, err := s.LoadCertificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		CipherSuites: cipherSuites(s.Ciphers),
	}, nil
}

// openSSLNames maps OpenSSL's names of TLS 1.2 suites to Go's, for the
// suites in tls.CipherSuites.
var openSSLNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

func cipherSuites(list string) []uint16 {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	var ids []uint16
	for _, name := range strings.FieldsFunc(list, func(r rune) bool {
		return r == ':' || r == ',' || r == ' '
	}) {
		id, ok := openSSLNames[strings.ToUpper(name)]
		if ok && secure[id] && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// LoadCertificate reads the certificate and its key from their files.
func (s *SSL) LoadCertificate() (tls.Certificate, error) {
	cert, err := os.ReadFile(s.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := os.ReadFile(s.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", s.Cert, s.Key, err)
	}
	return pair, nil
}
