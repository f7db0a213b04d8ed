package main

import (
	"strings"
	"testing"
)

func TestRSASignerFlagIsValidated(t *testing.T) {
	errs := tlsConfig{MQTTIdentity: "none", RSASigner: "boringssl"}.validate()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "--tls-rsa-signer must be auto, openssl or go") {
		t.Fatalf("errors %v", errs)
	}
}
