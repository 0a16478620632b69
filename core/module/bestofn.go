package module

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
)

// RewardFunc scores a prediction made from inputs; higher is better. It is
// DSPy's reward_fn(args, pred), with a context (a reward may call an LM, as
// an LM judge does) and an error: an error fails that attempt. It gets its
// own copy of the inputs. A reward function that panics fails that attempt
// too: the panic is recovered and reported as an error wrapping both
// ErrRewardPanicked and a *PanicError.
type RewardFunc func(ctx context.Context, inputs Inputs, pred *example.Prediction) (float64, error)

// Reward adapts a plain scoring function, as DSPy writes them, to a
// RewardFunc.
func Reward(score func(inputs Inputs, pred *example.Prediction) float64) RewardFunc {
	return func(_ context.Context, inputs Inputs, pred *example.Prediction) (float64, error) {
		return score(inputs, pred), nil
	}
}

var (
	// ErrRewardPanicked is wrapped by the error of an attempt whose reward
	// function panicked.
	ErrRewardPanicked = errors.New("module: reward function panicked")
	// ErrAttemptsFailed is returned by BestOfN and Refine when no attempt
	// produced a scored prediction; it wraps the last attempt's error too.
	ErrAttemptsFailed = errors.New("module: every attempt failed")
)

// RolloutOption configures BestOfN and Refine.
type RolloutOption func(*rolloutOptions)

type rolloutOptions struct {
	failCount   int
	programCode string
	rewardCode  string
}

// WithFailCount sets how many failed attempts are tolerated (DSPy's
// fail_count; default N). See BestOfN.FailCount for how it counts.
func WithFailCount(n int) RolloutOption { return func(o *rolloutOptions) { o.failCount = n } }

// RolloutTemperature is the temperature every BestOfN and Refine attempt
// runs at, as DSPy's.
const RolloutTemperature = 1.0

// BestOfN runs a program up to N times and returns the best prediction by a
// reward function: the first whose reward reaches Threshold, or else the
// highest-scoring one. It is DSPy's dspy.BestOfN.
//
// Each attempt runs with its own rollout id (module.WithRolloutID) and at
// temperature 1.0 (module.WithParams), so that the attempts are distinct
// samples, never answered from one cache entry or merged as identical
// in-flight requests. The rollout ids are the context's rollout id plus the
// attempt's index: "0", "1", … when the context has none, n+i when it is an
// integer n (as DSPy counts from the LM's rollout_id), and "<id>.<i>"
// otherwise, so the same call always samples the same rollouts (and a cache
// answers a repeated call).
//
// Attempts run one after another, as in DSPy, because the first attempt
// that reaches the threshold ends the run: running them concurrently would
// spend calls that DSPy does not make.
//
// Failed attempts (a program error, or a panicking reward function) are
// counted as DSPy counts them; see FailCount. Cancelling the context ends
// the run at once with the context's error; that is never counted as a
// failed attempt.
//
// The prediction returned is the chosen attempt's, with Usage and Cost
// summing every successful attempt. Safe for concurrent use as long as its
// fields are not changed while Forward runs.
type BestOfN struct {
	// Module is the program run; its predictors are named "module.<name>"
	// (just "module" for a bare Predict), as DSPy names them.
	Module Program
	// N is the most attempts made.
	N int
	// Reward scores each attempt.
	Reward RewardFunc
	// Threshold ends the run at the first attempt whose reward is at least
	// this.
	Threshold float64
	// FailCount is DSPy's fail_count (zero means N): attempt i (counting
	// from 0) that fails ends the run with its error when i exceeds the
	// failures still allowed, and otherwise uses one of them up. With the
	// default, N attempts that all fail return the N-th failure. When the
	// attempts run out with none scored, the error is ErrAttemptsFailed.
	// Unlike DSPy, the count starts afresh on every call.
	FailCount int
}

var _ Program = (*BestOfN)(nil)

// NewBestOfN wraps m: up to n attempts, stopping at the first whose reward
// reaches threshold. Options: WithFailCount.
func NewBestOfN(m Program, n int, reward RewardFunc, threshold float64, opts ...RolloutOption) *BestOfN {
	var o rolloutOptions
	for _, opt := range opts {
		opt(&o)
	}
	return &BestOfN{Module: m, N: n, Reward: reward, Threshold: threshold, FailCount: o.failCount}
}

// Forward runs the attempts and returns the chosen prediction.
func (b *BestOfN) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "BestOfN", nil, inputs, func(ctx context.Context) (*example.Prediction, error) {
		loop := rolloutLoop{name: "BestOfN", module: b.Module, n: b.N, reward: b.Reward, threshold: b.Threshold, failCount: b.FailCount}
		return loop.run(ctx, inputs, func(ctx context.Context, _ int) (*example.Prediction, error) {
			return b.Module.Forward(ctx, inputs)
		}, nil)
	})
}

// NamedPredictors lists the wrapped program's predictors under "module".
func (b *BestOfN) NamedPredictors() []NamedPredictor {
	return Children(Child{Name: "module", Program: b.Module})
}

// Clone copies the wrapped program; the reward function is shared.
func (b *BestOfN) Clone() Program {
	c := *b
	if b.Module != nil {
		c.Module = b.Module.Clone()
	}
	return &c
}

// rolloutLoop is the attempt loop BestOfN and Refine share.
type rolloutLoop struct {
	name      string
	module    Program
	n         int
	reward    RewardFunc
	threshold float64
	failCount int
}

// attemptFunc runs attempt idx in a context that carries its rollout id
// and temperature.
type attemptFunc func(ctx context.Context, idx int) (*example.Prediction, error)

// missFunc is called (with the caller's context, not the attempt's) after
// an attempt that scored below the threshold, except after the last one.
// It returns the usage it spent.
type missFunc func(ctx context.Context, idx int, pred *example.Prediction, reward float64) (lm.Usage, lm.Cost, error)

func (l rolloutLoop) run(ctx context.Context, inputs Inputs, attempt attemptFunc, miss missFunc) (*example.Prediction, error) {
	if l.module == nil {
		return nil, fmt.Errorf("module: %s has no module to run", l.name)
	}
	if l.reward == nil {
		return nil, fmt.Errorf("module: %s has no reward function", l.name)
	}
	if l.n < 1 {
		return nil, fmt.Errorf("module: %s: N is %d, must be at least 1", l.name, l.n)
	}
	allowed := l.failCount
	if allowed <= 0 {
		allowed = l.n
	}
	base := SettingsFrom(ctx).RolloutID
	var (
		best       *example.Prediction
		bestReward = math.Inf(-1)
		usage      lm.Usage
		cost       lm.Cost
		lastErr    error
	)
	for idx := range l.n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("module: %s: %w", l.name, context.Cause(ctx))
		}
		rid := rolloutID(base, idx)
		actx := WithParams(WithRolloutID(ctx, rid), lm.Params{Temperature: lm.Float(RolloutTemperature)})
		done, err := func() (bool, error) {
			pred, err := attempt(actx, idx)
			if err != nil {
				return false, err
			}
			if pred == nil {
				return false, errors.New("the program returned no prediction")
			}
			usage, cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
			reward, err := safeReward(ctx, l.reward, inputs, pred)
			if err != nil {
				return false, err
			}
			// The first scored attempt is kept even when its reward is NaN
			// or -Inf (where DSPy would keep none).
			if best == nil || reward > bestReward {
				best, bestReward = pred, reward
			}
			if reward >= l.threshold {
				return true, nil
			}
			if miss == nil || idx == l.n-1 {
				return false, nil
			}
			u, c, err := miss(ctx, idx, pred, reward)
			usage, cost = usage.Add(u), cost.Add(c)
			return false, err
		}()
		if done {
			break
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("module: %s: %w", l.name, context.Cause(ctx))
		}
		// DSPy's rule, verbatim: `if idx > self.fail_count: raise e`, then
		// `self.fail_count -= 1`.
		if idx > allowed {
			return nil, fmt.Errorf("module: %s: attempt %d of %d (rollout %s) failed, more failures than fail count %d allows: %w",
				l.name, idx+1, l.n, rid, l.failCountOrN(), err)
		}
		allowed--
		lastErr = fmt.Errorf("attempt %d of %d (rollout %s): %w", idx+1, l.n, rid, err)
	}
	if best == nil {
		return nil, fmt.Errorf("module: %s: %w: %w", l.name, ErrAttemptsFailed, lastErr)
	}
	best.Usage, best.Cost = usage, cost
	return best, nil
}

func (l rolloutLoop) failCountOrN() int {
	if l.failCount <= 0 {
		return l.n
	}
	return l.failCount
}

// rolloutID is attempt i's rollout id given the context's (see BestOfN).
func rolloutID(base string, i int) string {
	if base == "" {
		return strconv.Itoa(i)
	}
	if n, err := strconv.ParseInt(base, 10, 64); err == nil {
		return strconv.FormatInt(n+int64(i), 10)
	}
	return base + "." + strconv.Itoa(i)
}

// safeReward calls reward with a copy of the inputs, turning a panic into an
// error.
func safeReward(ctx context.Context, reward RewardFunc, inputs Inputs, pred *example.Prediction) (r float64, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %w", ErrRewardPanicked, newPanicError(v))
		}
	}()
	return reward(ctx, maps.Clone(inputs), pred)
}
