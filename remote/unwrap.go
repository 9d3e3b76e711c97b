package remote

// Wrappers such as the retry and rate-limit layers hide the backend they
// wrap; Unwrap lets a caller reach a capability only the innermost store
// has (an S3 bucket's Object Lock retention) without every wrapper having
// to forward it.

// Unwrap returns the backend r retries.
func (r *retryBackend) Unwrap() Backend { return r.b }

// Unwrap returns the backend b paces.
func (b *limitedBackend) Unwrap() Backend { return b.Backend }

// Find returns the first backend in b's chain of wrappers (b itself
// included) that is a T.
func Find[T any](b Backend) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok {
			return t, true
		}
		u, ok := b.(interface{ Unwrap() Backend })
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Unwrap returns the backend c caches.
func (c *Cache) Unwrap() Backend { return c.Backend }
