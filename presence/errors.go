package presence

import (
	"errors"
	"fmt"
)

// Error codes: the one error vocabulary of presenced. The API translates
// them to HTTP status codes in exactly one place.
const (
	EINVALID     = "invalid"     // the input is malformed or breaks a rule
	ENOTFOUND    = "not_found"   // the thing asked for does not exist
	EUNAVAILABLE = "unavailable" // a dependency (the database) cannot be reached
	EOVERLOADED  = "overloaded"  // a bounded queue is full; try again later
	ECONFLICT    = "conflict"    // the input contradicts what the store knows
	EINTERNAL    = "internal"    // a bug or an unexpected failure
)

// Error is a domain error with a machine-readable code, a message safe to
// show to clients, and optionally the input field it concerns.
type Error struct {
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one input field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	if _, ok := errors.AsType[Problems](err); ok {
		return EINVALID
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, or a generic text that reveals no internals.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Error()
	}
	if p, ok := errors.AsType[Problems](err); ok {
		return p.Error()
	}
	return "internal error"
}

// Problems collects every problem found in one input, so a client learns all
// of them at once instead of fixing them one by one.
type Problems []*Error

func (p Problems) Error() string {
	switch len(p) {
	case 0:
		return "no problems"
	case 1:
		return p[0].Error()
	}
	return fmt.Sprintf("%s (and %d more problems)", p[0].Error(), len(p)-1)
}

// Err returns p as an error, or nil when it is empty.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Add appends the problems err describes, if err is not nil: those of a
// Problems, the *Error in its chain, or, for any other error, an EINTERNAL
// one that reveals nothing of it.
func (p *Problems) Add(err error) {
	if err == nil {
		return
	}
	if all, ok := errors.AsType[Problems](err); ok {
		*p = append(*p, all...)
		return
	}
	*p = append(*p, asError(err))
}

// FieldProblem returns the problem err describes as one about field: the
// same message under the name the client used (a client id checked as
// clientIds[3], a channel id as takeoverBy).
func FieldProblem(field string, err error) *Error {
	return FieldErrorf(field, "%s", asError(err).Message)
}

func asError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Code: EINTERNAL, Message: "internal error"}
}
