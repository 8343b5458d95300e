// Package examples holds runnable examples of webhookd's two ends, each
// tested against a real delivery (examples_test.go):
//
//   - robot: a Go robot publishing with the publisher package;
//   - receiver: a Go receiver built on the receiver middleware;
//   - python/receiver.py and node/receiver.js: receivers with only the
//     language's standard library.
package examples
