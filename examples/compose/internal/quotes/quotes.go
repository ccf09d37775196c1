// Package quotes is the api's own: only cmd/api imports it.
package quotes

// Quote is what the api serves: edit it and kodev rebuilds only the api.
func Quote() string {
	return "Clear is better than clever."
}
