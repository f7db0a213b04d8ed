// Package auth holds the broker's credential and access checks, each
// loadable from a file: a bcrypt password file (PasswordFile), an ACL file
// (ACL) and Alibaba Cloud MQTT signature authentication (Signature: a bare
// AccessKeyId signing the GroupId, or "Signature|AccessKeyId|InstanceId"
// signing the whole client id for a configured instance id). Each type
// satisfies mqttbroker.Authenticator or mqttbroker.Authorizer.
//
// File syntax errors name the file and line ("acl.conf:12: ...") and never
// echo secrets; refusals wrap mqttbroker.ErrBadCredentials with a reason
// for the broker's log that never contains a password.
package auth
