// Checks every manifest in a Markdown file (the README) as a cluster would take it: each
// ```yaml block that is a whole object (it has apiVersion and kind) is decoded strictly into its
// Kubernetes or Knative type, so a misspelt or misplaced field fails; Knative's sources
// (ContainerSource, SinkBinding) are then defaulted and validated by their own webhook code.
// It must be built inside a knative/eventing checkout with its vendor directory:
// `just manifests PATH/TO/EVENTING` copies it there as cmd/heartbeats-manifests and runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
)

// The kinds the README may show, each with what checks it.
func decode(kind string, doc []byte) (apis.Validatable, error) {
	var object any
	var source interface {
		apis.Validatable
		apis.Defaultable
		metav1.Object
	}
	switch kind {
	case "sources.knative.dev/v1/ContainerSource":
		source = &sourcesv1.ContainerSource{}
	case "sources.knative.dev/v1/SinkBinding":
		source = &sourcesv1.SinkBinding{}
	case "batch/v1/Job":
		object = &batchv1.Job{}
	case "apps/v1/Deployment":
		object = &appsv1.Deployment{}
	case "v1/Service":
		object = &corev1.Service{}
	default:
		return nil, fmt.Errorf("no check for %s", kind)
	}
	if source != nil {
		object = source
	}
	if err := yaml.UnmarshalStrict(doc, object); err != nil {
		return nil, err
	}
	if source == nil {
		return nil, nil
	}
	// `kubectl apply` names the namespace of its context, and the API server sets it before any
	// webhook runs.
	if source.GetNamespace() == "" {
		source.SetNamespace("default")
	}
	source.SetDefaults(context.Background())
	return source, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: heartbeats-manifests README.md")
		os.Exit(2)
	}
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	checked, failed := 0, 0
	blocks := strings.Split(string(text), "```yaml\n")
	for _, block := range blocks[1:] {
		body, _, _ := strings.Cut(block, "```")
		for _, doc := range strings.Split(body, "\n---\n") {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal([]byte(doc), &head) != nil || head.APIVersion == "" || head.Kind == "" {
				continue // a fragment (a few args), not an object
			}
			kind := head.APIVersion + "/" + head.Kind
			name := kind + " " + head.Metadata.Name
			checked++
			source, err := decode(kind, []byte(doc))
			if err == nil && source != nil {
				if fe := source.Validate(apis.WithinCreate(context.Background())); fe != nil {
					err = fe
				}
			}
			if err != nil {
				failed++
				fmt.Printf("FAIL %s: %v\n", name, err)
			} else {
				fmt.Printf("ok   %s\n", name)
			}
		}
	}
	fmt.Printf("%d manifests, %d failed\n", checked, failed)
	if failed > 0 || checked == 0 {
		os.Exit(1)
	}
}
