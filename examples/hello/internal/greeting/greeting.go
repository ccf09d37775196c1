// Package greeting is shared by both commands: edit it and both images are rebuilt.
package greeting

// Message is the greeting both commands print.
func Message(name string) string {
	return "Hello, " + name + "!"
}
