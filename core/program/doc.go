// Package program saves and loads a program's state — each predictor's
// instructions, demos and sampling settings — in DSPy's JSON state-file
// format (see SaveState and LoadState), so that optimizers can snapshot
// candidates and a program optimized by DSPy runs here. It links no
// database: program files live in core/programfile and their runtime
// (endpoints, response cache) in core/runenv.
package program
