package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
)

// The example of Alibaba's signature authentication page
// (help.aliyun.com/document_detail/48271): client GID_Test@@@0001,
// AccessKey ID YYYYY, AccessKey secret XXXXX, instance mqtt-xxxxx.
const (
	docClientID   = "GID_Test@@@0001"
	docAccessKey  = "YYYYY"
	docSecretKey  = "XXXXX"
	docInstanceID = "mqtt-xxxxx"
	// Computed outside Go:
	//   printf %s GID_Test@@@0001 | openssl dgst -sha1 -hmac XXXXX -binary | base64
	//   printf %s GID_Test        | openssl dgst -sha1 -hmac XXXXX -binary | base64
	docClientIDPassword = "vI009IZJZVGRwBwZvnbwjfuXxVM="
	docGroupIDPassword  = "YRcXymreNmJUfwB8142smvKH8zE="
)

// aliyunPassword computes a password as Alibaba's demos do (Tools.macSignature
// in lmq-java-demo, lmq-go-demo): Base64(HMAC-SHA1(key = secretKey, text)).
// Written here again so that the tests do not check Sign against itself.
func aliyunPassword(secretKey, text string) string {
	mac := hmac.New(sha1.New, []byte(secretKey))
	mac.Write([]byte(text))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestAliyunPasswordMatchesTheKnownVector(t *testing.T) {
	if got := aliyunPassword(docSecretKey, docClientID); got != docClientIDPassword {
		t.Fatalf("aliyunPassword(client id) = %s, want %s", got, docClientIDPassword)
	}
	if got := aliyunPassword(docSecretKey, "GID_Test"); got != docGroupIDPassword {
		t.Fatalf("aliyunPassword(group id) = %s, want %s", got, docGroupIDPassword)
	}
	if got := sign([]byte(docSecretKey), docClientID); got != docClientIDPassword {
		t.Fatalf("Sign = %s, want %s", got, docClientIDPassword)
	}
}

func TestSignatureForms(t *testing.T) {
	sig := NewSignature(map[string]string{docAccessKey: docSecretKey, "AK2": "other-secret"},
		[]string{docInstanceID, "post-cn-0pp12gl"})
	device1, device2 := "GID_demo@@@dev-1", "GID_demo@@@dev-2"
	signatureUser := "Signature|" + docAccessKey + "|" + docInstanceID
	tests := []struct {
		name string
		c    mqttbroker.Credentials
		want error // nil, a specific refusal, or plain ErrBadCredentials
	}{
		{"documented example", creds(docClientID, signatureUser, docClientIDPassword), nil},
		{"signature mode", creds(device1, signatureUser, aliyunPassword(docSecretKey, device1)), nil},
		{"second configured instance", creds(device1, "Signature|YYYYY|post-cn-0pp12gl", aliyunPassword(docSecretKey, device1)), nil},
		{"second access key", creds(device1, "Signature|AK2|mqtt-xxxxx", aliyunPassword("other-secret", device1)), nil},
		{"client id without a group", creds("plain-device", signatureUser, aliyunPassword(docSecretKey, "plain-device")), nil},
		{"wrong instance", creds(device1, "Signature|YYYYY|mqtt-yyyyy", aliyunPassword(docSecretKey, device1)), errWrongInstance},
		{"instance ids are case-sensitive", creds(device1, "Signature|YYYYY|MQTT-XXXXX", aliyunPassword(docSecretKey, device1)), errWrongInstance},
		{"GroupId signed in signature mode", creds(device1, signatureUser, aliyunPassword(docSecretKey, "GID_demo")), errBadSignature},
		{"another device's signature", creds(device1, signatureUser, aliyunPassword(docSecretKey, device2)), errBadSignature},
		{"wrong secret", creds(device1, signatureUser, aliyunPassword("not-the-secret", device1)), errBadSignature},
		{"another key's secret", creds(device1, signatureUser, aliyunPassword("other-secret", device1)), errBadSignature},
		{"signature with a newline", creds(device1, signatureUser, aliyunPassword(docSecretKey, device1)+"\n"), errBadSignature},
		{"unpadded signature", creds(docClientID, signatureUser, strings.TrimRight(docClientIDPassword, "=")), errBadSignature},
		{"unknown access key", creds(device1, "Signature|AK3|mqtt-xxxxx", aliyunPassword(docSecretKey, device1)), errUnknownAccessKey},
		{"no password", mqttbroker.Credentials{ClientID: device1, HasUsername: true, Username: signatureUser}, errNoPassword},

		{"bare: documented example", creds(docClientID, docAccessKey, docGroupIDPassword), nil},
		{"bare: GroupId signed", creds(device1, docAccessKey, aliyunPassword(docSecretKey, "GID_demo")), nil},
		{"bare: same group, other device", creds(device2, docAccessKey, aliyunPassword(docSecretKey, "GID_demo")), nil},
		{"bare: other group", creds("GID_other@@@dev-1", docAccessKey, aliyunPassword(docSecretKey, "GID_demo")), errBadSignature},
		{"bare: client id signed", creds(device1, docAccessKey, aliyunPassword(docSecretKey, device1)), errBadSignature},
		{"bare: wrong secret", creds(device1, docAccessKey, aliyunPassword("not-the-secret", "GID_demo")), errBadSignature},
		{"bare: no GroupId", creds("no-group", docAccessKey, aliyunPassword(docSecretKey, "")), errNoGroupID},
		{"bare: unknown access key", creds(device1, "AK3", aliyunPassword(docSecretKey, "GID_demo")), mqttbroker.ErrBadCredentials},

		{"malformed: mode only", creds(device1, "Signature|", "x"), errMalformedUsername},
		{"malformed: no instance", creds(device1, "Signature|YYYYY", "x"), errMalformedUsername},
		{"malformed: empty instance", creds(device1, "Signature|YYYYY|", "x"), errMalformedUsername},
		{"malformed: empty access key", creds(device1, "Signature||mqtt-xxxxx", "x"), errMalformedUsername},
		{"malformed: all parts empty", creds(device1, "Signature||", "x"), errMalformedUsername},
		{"malformed: four parts", creds(device1, signatureUser+"|extra", aliyunPassword(docSecretKey, device1)), errMalformedUsername},
		{"malformed: trailing bar", creds(device1, signatureUser+"|", aliyunPassword(docSecretKey, device1)), errMalformedUsername},

		{"token mode", creds(device1, "Token|YYYYY|mqtt-xxxxx", "R|123|W|abcd"), errTokenMode},
		{"device credential mode", creds(device1, "DeviceCredential|DC.Z5fXh9sRRVufyLi6wo|mqtt-xxxxx", aliyunPassword("DC.secret", device1)), errDeviceCredential},
		{"mode names are case-sensitive", creds(device1, "signature|YYYYY|mqtt-xxxxx", aliyunPassword(docSecretKey, device1)), mqttbroker.ErrBadCredentials},
		{"unknown mode", creds(device1, "Custom|YYYYY|mqtt-xxxxx", aliyunPassword(docSecretKey, device1)), mqttbroker.ErrBadCredentials},
		{"empty mode", creds(device1, "|YYYYY|mqtt-xxxxx", aliyunPassword(docSecretKey, device1)), mqttbroker.ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sig.Authenticate(tt.c)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Authenticate(%q, %q) = %v, want it accepted", tt.c.ClientID, tt.c.Username, err)
			case tt.want == nil:
				return
			case err != tt.want:
				t.Fatalf("Authenticate(%q, %q) = %v, want %v", tt.c.ClientID, tt.c.Username, err, tt.want)
			}
			// CONNACK 0x04, not 0x05 (see mqttbroker.Authenticator).
			if !errors.Is(err, mqttbroker.ErrBadCredentials) || errors.Is(err, mqttbroker.ErrNotAuthorized) {
				t.Fatalf("refusal %v does not map to CONNACK 0x04", err)
			}
			for _, secret := range []string{string(tt.c.Password), docSecretKey, "other-secret"} {
				if len(secret) > 1 && strings.Contains(err.Error(), secret) {
					t.Fatalf("refusal %q contains a password or secret", err)
				}
			}
		})
	}
}

func TestSignatureModeNeedsAnInstanceID(t *testing.T) {
	sig, err := ParseAccessKeys(strings.NewReader("# keys\nYYYYY:XXXXX\n"), "keys", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Authenticate(creds(docClientID, "Signature|YYYYY|mqtt-xxxxx", docClientIDPassword)); err != errNoInstanceID {
		t.Fatalf("signature mode without instance ids: %v, want %v", err, errNoInstanceID)
	}
	if err := sig.Authenticate(creds(docClientID, "YYYYY", docGroupIDPassword)); err != nil {
		t.Fatalf("bare AccessKeyId without instance ids: %v, want it accepted", err)
	}
}

// TestAnyKeepsTheSignatureReason: behind a password file, a refused
// Alibaba-form user name still logs why, and a password-file user is not
// told it is an unknown AccessKeyId.
func TestAnyKeepsTheSignatureReason(t *testing.T) {
	pw, err := ParsePasswordFile(strings.NewReader("alice:"+hash(t, "wonderland")+"\n"), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	a := Any(pw, NewSignature(map[string]string{docAccessKey: docSecretKey}, []string{docInstanceID}))
	if err := a.Authenticate(creds(docClientID, "Signature|YYYYY|mqtt-other", docClientIDPassword)); err != errWrongInstance {
		t.Fatalf("wrong instance behind a password file: %v, want %v", err, errWrongInstance)
	}
	if err := a.Authenticate(creds("c1", "alice", "wrong")); err != mqttbroker.ErrBadCredentials {
		t.Fatalf("wrong password of a password-file user: %v, want plain %v", err, mqttbroker.ErrBadCredentials)
	}
	if err := a.Authenticate(creds(docClientID, "Signature|YYYYY|mqtt-xxxxx", docClientIDPassword)); err != nil {
		t.Fatalf("signature mode behind a password file: %v", err)
	}
}

// syncBuffer is a log destination the broker's connection goroutines may
// write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// refusal is what the broker logs when it refuses a CONNECT.
type refusal struct {
	Msg      string `json:"msg"`
	Username string `json:"username"`
	Code     int    `json:"code"`
	Err      string `json:"err"`
}

// refusals returns the refusals in a JSON log.
func refusals(t *testing.T, log string) []refusal {
	t.Helper()
	var out []refusal
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var r refusal
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(r.Msg, "mqtt connect refused") {
			out = append(out, r)
		}
	}
	return out
}

// TestAlibabaDevicesWithPaho runs a broker with signature authentication
// and connects to it with paho the way Alibaba's Go demo (lmq-go-demo)
// does: user name "Signature|AccessKeyId|InstanceId", password the
// HMAC-SHA1 of the client id.
func TestAlibabaDevicesWithPaho(t *testing.T) {
	const secretKey = "s3cr3t-SK-never-logged"
	var logs syncBuffer
	var mu sync.Mutex
	var connects []presence.Event
	srv := mqttbroker.New(mqttbroker.Config{
		Authenticator: NewSignature(map[string]string{"LTAI5tDemo": secretKey}, []string{"mqtt-cn-demo"}),
		Logger:        slog.New(slog.NewJSONHandler(&logs, nil)),
	}, func(e presence.Event) error {
		if e.Type == presence.EventConnect {
			mu.Lock()
			connects = append(connects, e)
			mu.Unlock()
		}
		return nil
	})
	ln := serveOnLoopback(t, srv)
	// connect returns the CONNACK return code paho received.
	connect := func(t *testing.T, clientID, username, password string) byte {
		t.Helper()
		opts := paho.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).
			SetClientID(clientID).SetUsername(username).SetPassword(password).
			SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("connect %s: no CONNACK", clientID)
		}
		if tok.Error() == nil {
			t.Cleanup(func() { c.Disconnect(0) })
		}
		return tok.(*paho.ConnectToken).ReturnCode()
	}

	const groupID, instanceID, accessKey = "GID_sensors", "mqtt-cn-demo", "LTAI5tDemo"
	clientID := fmt.Sprintf("%s@@@%s", groupID, "device-0001")
	username := fmt.Sprintf("Signature|%s|%s", accessKey, instanceID)
	goodPassword := aliyunPassword(secretKey, clientID)
	refused := []struct {
		name, clientID, username, password string
		reason                             error
	}{
		{"wrong instance", clientID, "Signature|LTAI5tDemo|mqtt-cn-elsewhere", goodPassword, errWrongInstance},
		{"wrong signature", clientID, username, aliyunPassword(secretKey, groupID), errBadSignature},
		{"wrong secret", clientID, username, aliyunPassword("guessed-secret", clientID), errBadSignature},
		{"malformed user name", clientID, "Signature|LTAI5tDemo", goodPassword, errMalformedUsername},
		{"token mode", clientID, "Token|LTAI5tDemo|mqtt-cn-demo", "R|token-content", errTokenMode},
	}
	for i, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if code := connect(t, tt.clientID, tt.username, tt.password); code != 0x04 {
				t.Fatalf("CONNACK %#x, want 0x04 (bad user name or password)", code)
			}
			// The refusal is logged before its CONNACK is sent.
			records := refusals(t, logs.String())
			if len(records) != i+1 || records[i].Username != tt.username || records[i].Code != 4 || records[i].Err != tt.reason.Error() {
				t.Fatalf("refusal log records %+v, want number %d for %q with err %q", records, i+1, tt.username, tt.reason)
			}
		})
	}
	if code := connect(t, clientID, username, goodPassword); code != 0x00 {
		t.Fatalf("signature mode: CONNACK %#x, want 0x00", code)
	}
	bareID := groupID + "@@@device-0002"
	if code := connect(t, bareID, accessKey, aliyunPassword(secretKey, groupID)); code != 0x00 {
		t.Fatalf("bare AccessKeyId: CONNACK %#x, want 0x00", code)
	}

	mu.Lock()
	got := append([]presence.Event(nil), connects...)
	mu.Unlock()
	if len(got) != 2 || got[0].ClientID != clientID || got[0].Username != username || got[1].ClientID != bareID {
		t.Fatalf("connect events %+v, want %s then %s", got, clientID, bareID)
	}
	if st := srv.Stats(); st.Refused != int64(len(refused)) {
		t.Fatalf("stats %+v, want %d refused", st, len(refused))
	}
	for _, secret := range []string{secretKey, goodPassword, aliyunPassword(secretKey, groupID), aliyunPassword("guessed-secret", clientID), "R|token-content"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log contains a password or secret %q:\n%s", secret, logs.String())
		}
	}
}
