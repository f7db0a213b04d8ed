// Package auth holds the broker's credential and access checks, each
// loadable from a file: a bcrypt password file (PasswordFile), an ACL file
// (ACL) and Alibaba Cloud MQTT signature authentication (Signature). Each
// type satisfies mqttbroker.Authenticator or mqttbroker.Authorizer.
//
// File syntax errors name the file and line ("acl.conf:12: ...") and never
// echo secrets.
package auth
