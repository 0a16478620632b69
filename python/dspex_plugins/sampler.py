"""The sampler plugin: Optuna studies that the Go host asks and tells (MIPROv2).

Run as ``python -m dspex_plugins.sampler`` (by the host, which sets the magic cookie). It
serves PluginInfo (capabilities ``["sampler"]``) and the Sampler service. Go drives: it
evaluates every candidate and keeps the trial log; this plugin holds one Optuna study per
``CreateStudy`` and answers ``Ask`` (the next trial's parameters) and ``Tell`` (a trial's
result). Everything it holds can be rebuilt by Go with ``CreateStudy`` + ``Replay``.

The study is configured as DSPy 3.4.1's MIPROv2 configures its own::

    optuna.create_study(direction="maximize",
                        sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True))

(every other TPE setting is Optuna's default; Optuna 5's has ``constant_liar`` on), and
each Ask is one of MIPROv2's objective calls: ``study.ask()``, then
``trial.suggest_categorical(name, choices)`` for each parameter *in the order of the
request's space* (MIPROv2: ``0_predictor_instruction``, ``0_predictor_demos``,
``1_predictor_instruction``, …). DSPy's choices are ``range(n)``; Go sends the strings
``"0"`` … ``"n-1"``: Optuna samples categoricals by index, so the indices it picks are the
same. MIPROv2's baseline and full-evaluation trials (``study.add_trial``) are ``Replay``
calls on the live study. With ``rng=continuous`` the study is that very object and asks
exactly what DSPy asks for the same seed and scores; the default, ``rng=trial``, seeds the
sampler per trial (see *Replay*), so that a restarted plugin can go on exactly.

**Sampler options** (``CreateStudyRequest.sampler_options``; unknown keys are refused):

- ``sampler``: ``tpe`` (the default), ``random`` (``RandomSampler(seed)``), ``nsgaii``
  (``NSGAIISampler(seed)``, a genetic search that handles categoricals) or ``bruteforce``
  (``BruteForceSampler(seed)``: every combination once, in random order; categorical,
  integer and stepped float parameters only). Without the option, the plugin's
  environment variable ``DSPEX_SAMPLER`` decides, so an operator can swap the sampler in
  the plugin's configuration (``env:``) alone.
- ``rng``: ``trial`` (the default) or ``continuous``; see *Replay* below.
- tpe: ``multivariate`` (default ``true``, as MIPROv2), ``constant_liar``,
  ``n_startup_trials``, ``n_ei_candidates`` (default: Optuna's own).
- nsgaii: ``population_size``, ``crossover_prob``, ``swapping_prob``.

**Replay.** A sampler draws from a random generator seeded once; a fresh sampler after a
restart starts that generator again, so a study rebuilt with ``add_trial`` and one that
ran through would ask different things next. With ``rng=trial`` (the default), every Ask
builds the study's sampler afresh, seeded with
``numpy.random.SeedSequence([seed, n]).generate_state(1)[0]`` where ``n`` is the number
of the trial being asked (the number of trials the study holds). A suggestion is then a
function of the seed, the trial's number and the history only, and ``Replay`` of the same
history gives the same next suggestions, in the uninterrupted study and in the rebuilt
one alike. With ``rng=continuous`` the sampler is built once, exactly as DSPy builds it,
so the suggestions are DSPy's own (plugins/mipro's TestDSPyMIPROParity checks a whole
MIPROv2 run against DSPy 3.4.1's). A rebuild then reproduces them only if Go re-drives
the history: every ``Ask``, ``Tell`` and ``Replay`` the study got, made again in the
original order (trials in flight included), which draws from the generator as the first
run did; Go's ``sampler.Redrive`` does that and checks that each Ask comes back as
logged, and MIPROv2 uses it after a restart. A call whose answer Go never saw (an Ask
answered as the plugin died) is not in the log; made again after the re-drive, it draws
what it drew the first time. What a re-drive cannot survive is another Optuna or numpy,
or other sampler options, in the restarted plugin: the first Ask that comes back
otherwise fails the rebuild (Go's ``sampler.ErrDiverged``).
NSGA-II keeps each trial's generation in the trial's system attributes, which a replayed
trial lacks (``PastTrial`` has no field for them): its replay matches the uninterrupted
study only within the first generation (``population_size`` trials, 50 by default).

**Fused calls.** ``AskRequest.before`` and ``ReplayRequest.before`` carry Tells and
Replays to make first, in order, each exactly as its own call would: MIPROv2 tells a
trial (and adds a full evaluation) in the round trip of the next Ask, which halves its
calls to the plugin. All the changes of a call are checked (against the trials' states
as the earlier ones leave them) before any is made; a refused one, named by its place
(``before[2]``), leaves the study as it was. ``CreateStudyResponse.fused_calls`` says
that the plugin makes them; a plugin that predates them would ignore them, so Go makes
each change as its own call when a study's creation did not say so.

With ``rng=trial`` the sampler that asks trial ``n`` is the study's TPE or random
sampler with its random generators seeded anew (:func:`reseed`), which asks what a new
``TPESampler(seed=...)`` would without the 0.3 ms of building one; other samplers are
built anew for each Ask.

``Replay`` appends trials without sampling (``study.add_trial``). Its states are
``complete`` (the default, with a finite value), ``pruned``, ``fail`` and ``running``: a
trial Go had asked and is still evaluating when the plugin died is replayed as
``running`` and told when its evaluation ends, so its number stays the same.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import math
import os
import sys
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from dspex_plugins import __version__, sdk
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

if TYPE_CHECKING:
    from types import ModuleType

    import optuna

NAME = "sampler"
CAPABILITIES = ("sampler",)
SAMPLER_ENV = "DSPEX_SAMPLER"
"""The plugin's default sampler when a study's options name none: ``tpe`` if unset."""
SAMPLERS = ("tpe", "random", "nsgaii", "bruteforce")
RNG_MODES = ("trial", "continuous")
INSTALL_HINT = "pip install 'dspex_plugins[sampler]'"
MAX_STUDIES = 64
"""Studies held at once; creating one more drops the least recently used (Go rebuilds a
study it still needs: its calls get NOT_FOUND)."""

_COMMON_OPTIONS = ("sampler", "rng")
_SAMPLER_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "tpe": ("multivariate", "constant_liar", "n_startup_trials", "n_ei_candidates"),
    "random": (),
    "nsgaii": ("population_size", "crossover_prob", "swapping_prob"),
    "bruteforce": (),
}
_STATES = ("complete", "pruned", "fail")
_REPLAY_STATES = (*_STATES, "running")

_log = logging.getLogger(NAME)


class SamplerError(sdk.StatusError):
    """A request the sampler refuses, with the gRPC status to answer it with."""


def _invalid(message: str) -> SamplerError:
    return SamplerError(grpc.StatusCode.INVALID_ARGUMENT, message)


def load_optuna() -> ModuleType:
    """Import Optuna and route its logs through the plugin's; FAILED_PRECONDITION if it
    is not installed."""
    try:
        module = importlib.import_module("optuna")
    except ImportError as err:
        raise SamplerError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"the sampler plugin needs Optuna, which is not installed in {sys.executable}"
            f" ({err}): {INSTALL_HINT}",
        ) from None
    # Optuna's own stderr handler would write lines the host cannot parse; its records go
    # to the root logger (hclog JSON) instead. Per process, like the plugin.
    module.logging.disable_default_handler()
    module.logging.enable_propagation()
    module.logging.set_verbosity(module.logging.WARNING)
    # TPESampler(multivariate=True) is "experimental" in every Optuna MIPROv2 runs on, and
    # the rng=trial rule builds a sampler per Ask: one warning per Ask says nothing.
    warnings.filterwarnings("ignore", category=module.exceptions.ExperimentalWarning)
    return module


def optuna_version() -> str:
    """Optuna's installed version without importing it, or ``not installed``."""
    try:
        return importlib.metadata.version("optuna")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def trial_seed(seed: int, number: int) -> int:
    """The seed of the sampler that asks trial ``number`` of a study seeded ``seed``
    (``rng=trial``)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


# ---- Requests to Optuna objects -----------------------------------------------------


def _parse_bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise _invalid(f"sampler option {key}={value!r}: want true or false")


def _parse_int(key: str, value: str, low: int) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise _invalid(f"sampler option {key}={value!r}: want an integer") from None
    if n < low:
        raise _invalid(f"sampler option {key}={n}: want at least {low}")
    return n


def _parse_prob(key: str, value: str) -> float:
    try:
        p = float(value.strip())
    except ValueError:
        raise _invalid(f"sampler option {key}={value!r}: want a number") from None
    if not 0.0 <= p <= 1.0:
        raise _invalid(f"sampler option {key}={p}: want a probability in [0, 1]")
    return p


SamplerFactory = Callable[[int], "optuna.samplers.BaseSampler"]


def sampler_factory(
    options: Mapping[str, str], default_sampler: str = "tpe"
) -> tuple[str, str, SamplerFactory]:
    """Return (sampler name, rng mode, seed → sampler) for a study's options."""
    from optuna import samplers

    name = options.get("sampler", "").strip().lower() or default_sampler
    if name not in SAMPLERS:
        raise _invalid(f"unknown sampler {name!r}: want one of {', '.join(SAMPLERS)}")
    allowed = (*_COMMON_OPTIONS, *_SAMPLER_OPTIONS[name])
    unknown = sorted(k for k in options if k not in allowed)
    if unknown:
        raise _invalid(
            f"unknown sampler options {unknown} for sampler {name!r}: want {', '.join(allowed)}"
        )
    rng = options.get("rng", "").strip().lower() or "trial"
    if rng not in RNG_MODES:
        raise _invalid(f"sampler option rng={rng!r}: want one of {', '.join(RNG_MODES)}")
    kwargs: dict[str, Any] = {}
    if name == "tpe":
        kwargs["multivariate"] = _parse_bool("multivariate", options.get("multivariate", "true"))
        if "constant_liar" in options:
            kwargs["constant_liar"] = _parse_bool("constant_liar", options["constant_liar"])
        for key in ("n_startup_trials", "n_ei_candidates"):
            if key in options:
                kwargs[key] = _parse_int(key, options[key], 0 if key == "n_startup_trials" else 1)

        def make(seed: int) -> optuna.samplers.BaseSampler:
            return samplers.TPESampler(seed=seed, **kwargs)

    elif name == "random":

        def make(seed: int) -> optuna.samplers.BaseSampler:
            return samplers.RandomSampler(seed=seed)

    elif name == "bruteforce":
        brute = _go_driven_brute_force()

        def make(seed: int) -> optuna.samplers.BaseSampler:
            return brute(seed=seed)

    else:
        if "population_size" in options:
            kwargs["population_size"] = _parse_int("population_size", options["population_size"], 2)
        for key in ("crossover_prob", "swapping_prob"):
            if key in options:
                kwargs[key] = _parse_prob(key, options[key])

        def make(seed: int) -> optuna.samplers.BaseSampler:
            return samplers.NSGAIISampler(seed=seed, **kwargs)

    return name, rng, make


def _go_driven_brute_force() -> type[optuna.samplers.BruteForceSampler]:
    from optuna.samplers import BruteForceSampler

    class GoDrivenBruteForce(BruteForceSampler):
        """BruteForceSampler without its stop: Optuna's ``Study.stop`` works only inside
        ``optimize``, and Go decides when a search ends. Once every combination was
        tried, it goes on asking combinations already tried."""

        def after_trial(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            state: optuna.trial.TrialState,
            values: Sequence[float] | None,
        ) -> None:
            return None

    return GoDrivenBruteForce


def distributions(
    space: Sequence[plugin_pb2.SearchParam],
) -> OrderedDict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distribution of each search parameter, in the request's order."""
    if not space:
        raise _invalid("empty search space: want at least one parameter")
    import optuna.distributions as dists

    out: OrderedDict[str, optuna.distributions.BaseDistribution] = OrderedDict()
    for param in space:
        name = param.name
        if not name:
            raise _invalid("search parameter without a name")
        if name in out:
            raise _invalid(f"search parameter {name!r} is given twice")
        kind = param.WhichOneof("kind")
        try:
            if kind == "categorical":
                choices = list(param.categorical.choices)
                if not choices:
                    raise _invalid(f"search parameter {name!r}: categorical without choices")
                if len(set(choices)) != len(choices):
                    raise _invalid(f"search parameter {name!r}: a choice is given twice")
                out[name] = dists.CategoricalDistribution(choices)
            elif kind == "int_range":
                r = param.int_range
                out[name] = dists.IntDistribution(r.low, r.high, log=r.log, step=r.step or 1)
            elif kind == "float_range":
                f = param.float_range
                out[name] = dists.FloatDistribution(f.low, f.high, log=f.log, step=f.step or None)
            else:
                raise _invalid(f"search parameter {name!r} has no kind")
        except ValueError as err:
            raise _invalid(f"search parameter {name!r}: {err}") from None
    return out


def to_proto(dist: optuna.distributions.BaseDistribution, value: object) -> plugin_pb2.ParamValue:
    """A parameter's value as the proto carries it."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return plugin_pb2.ParamValue(categorical=str(value))
    if isinstance(dist, IntDistribution):
        return plugin_pb2.ParamValue(int_value=int(str(value)))
    return plugin_pb2.ParamValue(float_value=float(str(value)))


def from_proto(
    name: str, dist: optuna.distributions.BaseDistribution, value: plugin_pb2.ParamValue
) -> object:
    """A replayed parameter's value, checked against its distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    which = value.WhichOneof("value")
    got: str | int | float
    try:
        if isinstance(dist, CategoricalDistribution) and which == "categorical":
            got = value.categorical
            inside = dist._contains(dist.to_internal_repr(got))
        elif isinstance(dist, IntDistribution) and which == "int_value":
            number = value.int_value
            got = number
            inside = dist._contains(dist.to_internal_repr(number))
        elif isinstance(dist, FloatDistribution) and which in ("float_value", "int_value"):
            got = float(value.float_value if which == "float_value" else value.int_value)
            inside = dist._contains(dist.to_internal_repr(got))
        else:
            raise _invalid(
                f"parameter {name!r}: a {which or 'missing'} value for a {type(dist).__name__}"
            )
    except ValueError:
        inside = False
    if not inside:
        raise _invalid(f"parameter {name!r}: {got!r} is outside its search space")
    return got


def _suggest(
    trial: optuna.trial.Trial, name: str, dist: optuna.distributions.BaseDistribution
) -> object:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"parameter {name!r}: unexpected distribution {dist!r}")


# ---- The service --------------------------------------------------------------------


@dataclass
class _Study:
    """One study and what asking it takes; ``lock`` serialises its calls."""

    study: optuna.Study
    space: OrderedDict[str, optuna.distributions.BaseDistribution]
    seed: int
    sampler: str
    rng: str
    make_sampler: SamplerFactory
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seed_for(self, number: int) -> None:
        """``rng=trial``: give the study the sampler that asks trial ``number``. A TPE or
        random sampler is reseeded in place (:func:`reseed`), which asks what a new one
        would (``test_reseed_asks_what_a_new_sampler_asks``) without the cost of building
        one; any other is built anew."""
        seed = trial_seed(self.seed, number)
        if not reseed(self.study.sampler, seed):
            self.study.sampler = self.make_sampler(seed)


def reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> bool:
    """Seed a TPE or random sampler's random generators with ``seed``, as its constructor
    does, and report whether it did: False for other samplers (and Optuna versions whose
    samplers keep their generators elsewhere), which must be built anew.

    Everything else a TPE sampler holds is its options and a cache of the study's
    intersection search space that gives what a fresh computation gives."""
    from optuna.samplers import RandomSampler, TPESampler

    gens = []
    if type(sampler) is TPESampler:
        gens = [getattr(sampler, "_rng", None)]
        inner = getattr(sampler, "_random_sampler", None)
        if type(inner) is not RandomSampler:
            return False
        gens.append(getattr(inner, "_rng", None))
    elif type(sampler) is RandomSampler:
        gens = [getattr(sampler, "_rng", None)]
    else:
        return False
    if not all(hasattr(g, "rng") for g in gens):
        return False
    for g in gens:
        g.rng.seed(seed)  # type: ignore[union-attr]
    return True


class SamplerService(plugin_pb2_grpc.SamplerServicer):
    """The Sampler service: Optuna studies by id. Safe for concurrent use; calls on one
    study run one at a time.

    ``default_sampler`` is the sampler of studies whose options name none (``tpe`` by
    default; :func:`main` takes it from ``DSPEX_SAMPLER``). ``max_studies`` bounds the
    studies held (:data:`MAX_STUDIES`). ``load`` imports Optuna (:func:`load_optuna`).
    """

    def __init__(
        self,
        *,
        default_sampler: str = "tpe",
        max_studies: int = MAX_STUDIES,
        load: Callable[[], ModuleType] = load_optuna,
    ) -> None:
        self._default_sampler = default_sampler.strip().lower() or "tpe"
        self._max_studies = max_studies
        self._load = load
        self._lock = threading.Lock()
        self._studies: OrderedDict[str, _Study] = OrderedDict()

    # -- plumbing --

    def _get(self, study_id: str) -> _Study:
        with self._lock:
            held = self._studies.get(study_id)
            if held is None:
                raise SamplerError(
                    grpc.StatusCode.NOT_FOUND,
                    f"no study {study_id!r}: create it (and replay its trials) first",
                )
            self._studies.move_to_end(study_id)
            return held

    def _abort(self, context: grpc.ServicerContext, err: SamplerError) -> NoReturn:
        sdk.abort(context, err, _log, "sampler", logging.DEBUG)

    # -- RPCs --

    def CreateStudy(
        self, request: plugin_pb2.CreateStudyRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.CreateStudyResponse:
        try:
            return self.create_study(request)
        except SamplerError as err:
            self._abort(context, err)

    def Ask(
        self, request: plugin_pb2.AskRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.AskResponse:
        try:
            return self.ask(request)
        except SamplerError as err:
            self._abort(context, err)

    def Tell(
        self, request: plugin_pb2.TellRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.TellResponse:
        try:
            return self.tell(request)
        except SamplerError as err:
            self._abort(context, err)

    def Best(
        self, request: plugin_pb2.BestRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.BestResponse:
        try:
            return self.best(request)
        except SamplerError as err:
            self._abort(context, err)

    def Replay(
        self, request: plugin_pb2.ReplayRequest, context: grpc.ServicerContext
    ) -> plugin_pb2.ReplayResponse:
        try:
            return self.replay(request)
        except SamplerError as err:
            self._abort(context, err)

    # -- the work, callable without gRPC; raise SamplerError --

    def create_study(
        self, request: plugin_pb2.CreateStudyRequest
    ) -> plugin_pb2.CreateStudyResponse:
        """Create (or replace) a study; an empty id gets a fresh one."""
        self._load()
        import optuna

        direction = request.direction.strip().lower() or "maximize"
        if direction not in ("maximize", "minimize"):
            raise _invalid(f"direction {request.direction!r}: want maximize or minimize")
        if not 0 <= request.seed < 2**32:
            raise _invalid(f"seed {request.seed}: want 0 <= seed < 2**32")
        space = distributions(request.space)
        name, rng, make = sampler_factory(request.sampler_options, self._default_sampler)
        directions = optuna.study.StudyDirection
        study = optuna.create_study(
            direction=directions.MAXIMIZE if direction == "maximize" else directions.MINIMIZE,
            sampler=make(request.seed),
        )
        study_id = request.study_id or uuid.uuid4().hex
        held = _Study(study, space, request.seed, name, rng, make)
        with self._lock:
            self._studies.pop(study_id, None)
            self._studies[study_id] = held
            while len(self._studies) > self._max_studies:
                dropped, _ = self._studies.popitem(last=False)
                _log.warning(
                    "too many studies: dropped the least recently used",
                    extra={"study": dropped, "max_studies": self._max_studies},
                )
        _log.info(
            "study created",
            extra={
                "study": study_id,
                "sampler": name,
                "rng": rng,
                "seed": request.seed,
                "params": len(space),
                "direction": direction,
            },
        )
        return plugin_pb2.CreateStudyResponse(study_id=study_id, fused_calls=True)

    def ask(self, request: plugin_pb2.AskRequest) -> plugin_pb2.AskResponse:
        """Make the request's ``before`` changes (each as :meth:`tell` or :meth:`replay`
        would; all are checked before any is made), then start a trial and suggest its
        parameters, in the space's order."""
        held = self._get(request.study_id)
        with held.lock:
            changes = self._plan(held, request.study_id, request.before)
            for make in changes:
                make()
            study = held.study
            if held.rng == "trial":
                held.seed_for(len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            params = {name: _suggest(trial, name, dist) for name, dist in held.space.items()}
        _log.debug(
            "trial asked",
            extra={
                "study": request.study_id,
                "trial": trial.number,
                "params": params,
                "before": len(changes),
            },
        )
        return plugin_pb2.AskResponse(
            trial_number=trial.number,
            params={name: to_proto(held.space[name], v) for name, v in params.items()},
            applied=len(changes),
        )

    def tell(self, request: plugin_pb2.TellRequest) -> plugin_pb2.TellResponse:
        """Finish a running trial: complete (with a finite value), pruned or fail."""
        held = self._get(request.study_id)
        with held.lock:
            finished = self._finished(held)
            self._tell_change(held, request.study_id, request, finished)()
        return plugin_pb2.TellResponse()

    # -- changes: checked first (against the trials' states as the earlier changes of the
    # same call leave them), then made --

    @staticmethod
    def _finished(held: _Study) -> list[bool]:
        return [t.state.is_finished() for t in held.study.get_trials(deepcopy=False)]

    def _plan(
        self,
        held: _Study,
        study_id: str,
        before: Sequence[plugin_pb2.StudyChange],
    ) -> list[Callable[[], None]]:
        """Check a call's ``before`` changes and return them, each ready to make."""
        finished = self._finished(held)
        out: list[Callable[[], None]] = []
        for i, change in enumerate(before):
            which = change.WhichOneof("change")
            try:
                if which == "tell":
                    if change.tell.study_id not in ("", study_id):
                        raise _invalid(f"a tell of study {change.tell.study_id!r}")
                    out.append(self._tell_change(held, study_id, change.tell, finished))
                elif which == "replay":
                    if change.replay.study_id not in ("", study_id):
                        raise _invalid(f"a replay of study {change.replay.study_id!r}")
                    if change.replay.before:
                        raise _invalid("a replay that carries changes of its own")
                    built = self._built_trials(held, change.replay.trials)
                    finished.extend(t.state.is_finished() for t in built)
                    out.append(self._replay_change(held, study_id, built))
                else:
                    raise _invalid("neither a tell nor a replay")
            except SamplerError as err:
                raise SamplerError(err.code, f"change before[{i}]: {err}") from None
        return out

    def _tell_change(
        self,
        held: _Study,
        study_id: str,
        request: plugin_pb2.TellRequest,
        finished: list[bool],
    ) -> Callable[[], None]:
        """Check a tell against the trials' states (``finished``, which it updates)."""
        state_name = request.state.strip().lower() or "complete"
        if state_name not in _STATES:
            raise _invalid(f"state {request.state!r}: want one of {', '.join(_STATES)}")
        number = request.trial_number
        if state_name == "complete" and not math.isfinite(request.value):
            raise _invalid(f"trial {number}: value {request.value} is not finite")
        if not 0 <= number < len(finished):
            raise SamplerError(
                grpc.StatusCode.NOT_FOUND,
                f"study {study_id!r} has no trial {number} (it holds {len(finished)})",
            )
        if finished[number]:
            trials = held.study.get_trials(deepcopy=False)
            state = "finished by an earlier change of this call"
            if number < len(trials) and trials[number].state.is_finished():
                state = trials[number].state.name.lower()
            raise SamplerError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"trial {number} of study {study_id!r} is already {state}",
            )
        finished[number] = True
        value = request.value

        def make() -> None:
            from optuna.trial import TrialState

            if state_name == "complete":
                held.study.tell(number, value)
            else:
                held.study.tell(
                    number, state=TrialState.PRUNED if state_name == "pruned" else TrialState.FAIL
                )
            _log.debug(
                "trial told",
                extra={"study": study_id, "trial": number, "state": state_name, "value": value},
            )

        return make

    def best(self, request: plugin_pb2.BestRequest) -> plugin_pb2.BestResponse:
        """The best complete trial (Optuna's ``best_trial``); found=False if none."""
        held = self._get(request.study_id)
        with held.lock:
            try:
                trial = held.study.best_trial
            except ValueError:
                return plugin_pb2.BestResponse(found=False)
        return plugin_pb2.BestResponse(
            found=True,
            trial_number=trial.number,
            params={n: to_proto(held.space[n], v) for n, v in trial.params.items()},
            value=float(trial.value),  # type: ignore[arg-type]
        )

    def replay(self, request: plugin_pb2.ReplayRequest) -> plugin_pb2.ReplayResponse:
        """Make the request's ``before`` changes, then append the given trials, in order,
        without sampling; all or none. Answers the number of trials the study then holds
        (the next trial's number)."""
        held = self._get(request.study_id)
        built = self._built_trials(held, request.trials)
        with held.lock:
            changes = self._plan(held, request.study_id, request.before)
            for make in changes:
                make()
            self._replay_change(held, request.study_id, built)()
            total = len(held.study.get_trials(deepcopy=False))
        return plugin_pb2.ReplayResponse(trials=total, applied=len(changes))

    @staticmethod
    def _replay_change(
        held: _Study, study_id: str, built: list[optuna.trial.FrozenTrial]
    ) -> Callable[[], None]:
        def make() -> None:
            held.study.add_trials(built)
            _log.info(
                "trials replayed",
                extra={
                    "study": study_id,
                    "trials": len(built),
                    "total": len(held.study.get_trials(deepcopy=False)),
                },
            )

        return make

    @staticmethod
    def _built_trials(
        held: _Study, trials: Sequence[plugin_pb2.PastTrial]
    ) -> list[optuna.trial.FrozenTrial]:
        """The replayed trials as Optuna's, checked against the study's space."""
        from optuna.trial import TrialState, create_trial

        by_name = {
            "complete": TrialState.COMPLETE,
            "pruned": TrialState.PRUNED,
            "fail": TrialState.FAIL,
            "running": TrialState.RUNNING,
        }
        built = []
        for i, past in enumerate(trials):
            state_name = past.state.strip().lower() or "complete"
            if state_name not in _REPLAY_STATES:
                raise _invalid(
                    f"replayed trial {i}: state {past.state!r}: want one of"
                    f" {', '.join(_REPLAY_STATES)}"
                )
            missing = [n for n in held.space if n not in past.params]
            extra = sorted(n for n in past.params if n not in held.space)
            if missing or extra:
                raise _invalid(
                    f"replayed trial {i}: parameters missing {missing}, not in the space {extra}"
                )
            params = {n: from_proto(n, d, past.params[n]) for n, d in held.space.items()}
            value = None
            if state_name == "complete":
                if not math.isfinite(past.value):
                    raise _invalid(f"replayed trial {i}: value {past.value} is not finite")
                value = past.value
            try:
                built.append(
                    create_trial(
                        params=params,
                        distributions=dict(held.space),
                        value=value,
                        state=by_name[state_name],
                    )
                )
            except ValueError as err:
                raise _invalid(f"replayed trial {i}: {err}") from None
        return built


def register(server: grpc.Server) -> None:
    """Add the Sampler service to a plugin's server; its default sampler comes from
    ``DSPEX_SAMPLER``."""
    service = SamplerService(default_sampler=os.environ.get(SAMPLER_ENV, ""))
    plugin_pb2_grpc.add_SamplerServicer_to_server(service, server)


def main() -> NoReturn:
    default = os.environ.get(SAMPLER_ENV, "").strip().lower() or "tpe"
    sdk.serve(
        NAME,
        __version__,
        CAPABILITIES,
        register,
        details={
            "optuna": optuna_version(),
            "default_sampler": default,
            "samplers": ",".join(SAMPLERS),
        },
    )


if __name__ == "__main__":
    main()
