package webhook

import (
	"errors"
	"net/url"
)

// safeErr is what logs say of a failed attempt: net/http's error names
// the URL, and a hook's URL may hold a token in its query.
func safeErr(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
