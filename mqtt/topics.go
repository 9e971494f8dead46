package mqtt

import "strings"

// topicRoot is the tree of every device's topics.
const topicRoot = "medprov/v1/devices/"

// ReadingsTopic is where a device publishes its signed readings.
func ReadingsTopic(deviceID string) string { return topicRoot + deviceID + "/readings" }

// ResultsTopic is where the outcomes of a device's readings are published.
func ResultsTopic(deviceID string) string { return topicRoot + deviceID + "/results" }

// maySubscribe reports whether device may subscribe to filter (or receive
// a message on a topic of that name): its results topic, or its own tree
// through a wildcard. Device ids hold no '/', '+' or '#' (wire.ValidID).
func maySubscribe(device, filter string) bool {
	own, ok := strings.CutPrefix(filter, topicRoot+device+"/")
	if !ok || device == "" {
		return false
	}
	switch own {
	case "results", "+", "#":
		return true
	}
	return false
}
