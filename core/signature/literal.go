package signature

// LiteralEqual reports whether v, a value in the JSON model (string, bool,
// int64, float64, nil), equals choice, one of a Literal type's values, as
// JSON schema's enum compares them: numbers by value (1 equals 1.0),
// booleans never equal to numbers, strings exactly.
func LiteralEqual(choice, v any) bool {
	switch c := choice.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == c
	case bool:
		b, ok := v.(bool)
		return ok && b == c
	case int64:
		switch x := v.(type) {
		case int64:
			return x == c
		case float64:
			return x == float64(c)
		}
	case float64:
		switch x := v.(type) {
		case int64:
			return float64(x) == c
		case float64:
			return x == c
		}
	case nil:
		return v == nil
	}
	return false
}
