package programfile

import (
	"fmt"
	"math/big"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/pyjson"
)

// Demo is one few-shot example of a program file: its fields in the file's
// order, nested mappings as ordered objects and integers of any size, so
// that prompts print them as DSPy prints the same demo.
type Demo example.Object

// intLiteralRE matches YAML's decimal integer spelling.
var intLiteralRE = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

// maxDemoNodes bounds the YAML nodes one demo may expand to, counting
// aliases each time they are used (a "billion laughs" file stops here).
const maxDemoNodes = 1 << 20

// UnmarshalYAML reads a demo from a YAML mapping.
func (d *Demo) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a demo must be a mapping of field names to values", n.Line)
	}
	budget := maxDemoNodes
	v, err := yamlValue(n, &budget)
	if err != nil {
		return err
	}
	*d = Demo(v.(pyjson.Object))
	return nil
}

// yamlValue converts a YAML node to the JSON model, keeping mapping order.
func yamlValue(n *yaml.Node, budget *int) (any, error) {
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("line %d: demo is larger than %d values (aliases counted each time they are used)", n.Line, maxDemoNodes)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return yamlValue(n.Alias, budget)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0], budget)
	case yaml.MappingNode:
		obj := pyjson.Object{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping keys must be plain values", k.Line)
			}
			v, err := yamlValue(n.Content[i+1], budget)
			if err != nil {
				return nil, err
			}
			obj = obj.Set(k.Value, v)
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c, budget)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	}
	switch tag := n.ShortTag(); {
	case tag == "!!str":
		return n.Value, nil
	case tag == "!!int" || (tag == "!!float" && n.Style == 0 && intLiteralRE.MatchString(n.Value)):
		// Read here rather than by yaml.v3, which resolves a plain integer
		// beyond uint64 as a float and clamps one below int64's minimum.
		// big.Int's base 0 reads the same forms as yaml.v3 (sign, 0x, 0o,
		// 0b and leading-0 octal, underscores).
		if b, ok := new(big.Int).SetString(n.Value, 0); ok {
			return pyjson.Normalize(b), nil
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return pyjson.Normalize(v), nil
}
