"""The sampler plugin: the servicer alone, through an in-process gRPC server, and as a
plugin process; ask/tell, DSPy's MIPROv2 study, replay, each sampler, and errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from conftest import Launch
from dspex_plugins import sampler
from dspex_plugins.proto import plugin_pb2, plugin_pb2_grpc

if TYPE_CHECKING:
    from optuna.trial import Trial

optuna = pytest.importorskip("optuna")

SAMPLER = ("-m", "dspex_plugins.sampler")
Round = tuple[int, tuple[int, ...]]
# MIPROv2's space for two predictors: per predictor an instruction and a demo set.
SIZES = {
    "0_predictor_instruction": 5,
    "0_predictor_demos": 4,
    "1_predictor_instruction": 3,
    "1_predictor_demos": 6,
}


def space(sizes: Mapping[str, int] = SIZES) -> list[plugin_pb2.SearchParam]:
    return [
        plugin_pb2.SearchParam(
            name=name, categorical=plugin_pb2.Categorical(choices=[str(i) for i in range(n)])
        )
        for name, n in sizes.items()
    ]


def create(
    service: sampler.SamplerService,
    seed: int = 9,
    study_id: str = "s",
    options: Mapping[str, str] | None = None,
    **more: str,
) -> str:
    request = plugin_pb2.CreateStudyRequest(
        study_id=study_id, space=space(), seed=seed, sampler_options={**(options or {}), **more}
    )
    return str(service.create_study(request).study_id)


def indices(params: Mapping[str, plugin_pb2.ParamValue]) -> tuple[int, ...]:
    return tuple(int(params[name].categorical) for name in SIZES)


def score(idx: Sequence[int]) -> float:
    """A deterministic metric with a clear optimum, as a minibatch score would be."""
    return sum(idx) / 20 + (0.5 if idx[0] == 2 else 0.0) + (0.25 if idx[3] == 4 else 0.0)


def baseline() -> plugin_pb2.PastTrial:
    """MIPROv2's first trial: the default program (every index 0), added with its score."""
    zero = plugin_pb2.ParamValue(categorical="0")
    return plugin_pb2.PastTrial(params=dict.fromkeys(SIZES, zero), value=0.3, state="complete")


def ask_tell(service: sampler.SamplerService, n: int, study_id: str = "s") -> list[Round]:
    """n sequential rounds; returns (number, indices) per round."""
    out: list[Round] = []
    for _ in range(n):
        got = service.ask(plugin_pb2.AskRequest(study_id=study_id))
        idx = indices(got.params)
        service.tell(
            plugin_pb2.TellRequest(
                study_id=study_id, trial_number=got.trial_number, value=score(idx)
            )
        )
        out.append((got.trial_number, idx))
    return out


def history(service: sampler.SamplerService, study_id: str = "s") -> list[plugin_pb2.PastTrial]:
    """What Go's trial log holds, rebuilt here from the study itself."""
    held = service._studies[study_id]
    past = []
    for t in held.study.get_trials(deepcopy=False):
        past.append(
            plugin_pb2.PastTrial(
                params={n: sampler.to_proto(held.space[n], v) for n, v in t.params.items()},
                value=t.value if t.value is not None else 0.0,
                state=t.state.name.lower(),
            )
        )
    return past


def code_of(excinfo: pytest.ExceptionInfo[sampler.SamplerError]) -> grpc.StatusCode:
    return excinfo.value.code


# ---- The servicer -------------------------------------------------------------------


def test_ask_tell_best() -> None:
    service = sampler.SamplerService()
    assert create(service) == "s"
    service.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    rounds = ask_tell(service, 12)
    assert [n for n, _ in rounds] == list(range(1, 13))
    for _, idx in rounds:
        assert all(0 <= i < n for i, n in zip(idx, SIZES.values(), strict=True))
    best = service.best(plugin_pb2.BestRequest(study_id="s"))
    assert best.found
    best_score = max([0.3] + [score(idx) for _, idx in rounds])
    assert best.value == pytest.approx(best_score)
    if best.trial_number > 0:
        assert score(indices(best.params)) == pytest.approx(best.value)


def test_empty_id_gets_one_and_best_without_trials() -> None:
    service = sampler.SamplerService()
    study_id = create(service, study_id="")
    assert len(study_id) == 32
    assert not service.best(plugin_pb2.BestRequest(study_id=study_id)).found


def test_continuous_tpe_is_dspy_mipro_v2() -> None:
    """rng=continuous asks what DSPy 3.4.1's MIPROv2 asks for the same seed and scores:
    TPESampler(seed, multivariate=True), direction maximize, the baseline added, then
    study.ask() + suggest_categorical(name, range(n)) per parameter in order."""
    dists = {
        name: optuna.distributions.CategoricalDistribution(range(n)) for name, n in SIZES.items()
    }
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=9, multivariate=True),
    )
    study.add_trial(
        optuna.trial.create_trial(params=dict.fromkeys(SIZES, 0), distributions=dists, value=0.3)
    )
    want: list[Round] = []

    def objective(trial: Trial) -> float:
        idx = tuple(trial.suggest_categorical(name, range(n)) for name, n in SIZES.items())
        want.append((trial.number, idx))
        return score(idx)

    study.optimize(objective, n_trials=16)

    service = sampler.SamplerService()
    create(service, rng="continuous")
    service.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    assert ask_tell(service, 16) == want


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("tpe", {}),
        ("tpe", {"constant_liar": "true", "n_startup_trials": "4"}),
        ("random", {}),
        # Within its first generation: see the module's note on NSGA-II.
        ("nsgaii", {}),
        ("bruteforce", {}),
    ],
)
def test_replay_continues_as_an_uninterrupted_study(name: str, options: dict[str, str]) -> None:
    """rng=trial (the default): N trials told directly, or replayed into a fresh
    servicer (a restarted plugin), give the same next suggestions."""
    first = sampler.SamplerService()
    create(first, options={"sampler": name, **options})
    first.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    ask_tell(first, 14)

    restarted = sampler.SamplerService()
    create(restarted, options={"sampler": name, **options})
    got = restarted.replay(plugin_pb2.ReplayRequest(study_id="s", trials=history(first)))
    assert got.trials == 15

    assert ask_tell(restarted, 8) == ask_tell(first, 8)


def test_continuous_rng_needs_the_history_re_driven() -> None:
    """Why rng=trial exists: a fresh TPESampler(seed) after add_trial of the history asks
    something else than the sampler that drew it; re-driving the asks restores it."""
    first = sampler.SamplerService()
    create(first, rng="continuous")
    first.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    rounds = ask_tell(first, 14)
    want = ask_tell(first, 6)

    replayed = sampler.SamplerService()
    create(replayed, rng="continuous")
    replayed.replay(plugin_pb2.ReplayRequest(study_id="s", trials=history(first)[:15]))
    assert ask_tell(replayed, 6) != want

    redriven = sampler.SamplerService()
    create(redriven, rng="continuous")
    redriven.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    assert ask_tell(redriven, 14) == rounds
    assert ask_tell(redriven, 6) == want


Op = tuple[str, int, tuple[int, ...], float]
"""A call on a study, as Go logs it for a re-drive: ("ask", number, indices, 0),
("tell", number, (), value) or ("add", -1, indices, value)."""


def params_of(idx: Sequence[int]) -> dict[str, plugin_pb2.ParamValue]:
    return {
        name: plugin_pb2.ParamValue(categorical=str(i)) for name, i in zip(SIZES, idx, strict=True)
    }


def drive(service: sampler.SamplerService, ops: Sequence[Op]) -> list[Op]:
    """Make the calls: an "ask" with number -1 asks anew, one with a number checks that
    the study asks that trial with those indices; returns the calls made, as logged."""
    log: list[Op] = []
    for kind, number, idx, value in ops:
        if kind == "ask":
            got = service.ask(plugin_pb2.AskRequest(study_id="s"))
            asked = (got.trial_number, indices(got.params))
            if number >= 0:
                assert asked == (number, idx)
            log.append(("ask", *asked, 0.0))
        elif kind == "tell":
            service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=number, value=value))
            log.append((kind, number, idx, value))
        else:
            trial = plugin_pb2.PastTrial(params=params_of(idx), value=value)
            service.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[trial]))
            log.append((kind, number, idx, value))
    return log


def mipro_calls(
    service: sampler.SamplerService, rounds: int, in_flight: int = 1, full_every: int = 5
) -> list[Op]:
    """MIPROv2's calls as plugins/mipro makes them: up to `in_flight` asks (a batch never
    crosses a full evaluation), then their tells (scored by :func:`score`), and after
    every `full_every` trials a full evaluation of the best trial so far, added with a
    lower score."""
    log: list[Op] = []
    done = 0
    while done < rounds:
        k = min(in_flight, rounds - done, full_every - done % full_every)
        asked = drive(service, [("ask", -1, (), 0.0)] * k)
        log += asked
        log += drive(service, [("tell", n, (), score(idx)) for _, n, idx, _ in asked])
        done += k
        if done % full_every == 0:
            best = max((op for op in log if op[0] == "ask"), key=lambda op: score(op[2]))
            log += drive(service, [("add", -1, best[2], score(best[2]) - 0.1)])
    return log


@pytest.mark.parametrize("in_flight", [1, 2])
def test_continuous_rebuild_re_drives_the_calls(in_flight: int) -> None:
    """rng=continuous after a restart: Go makes the logged calls again (sampler.Redrive:
    each ask must come back as logged, the tells and added trials are made again, in the
    original order), and the rebuilt study asks what the uninterrupted one asks, with
    trials in flight, added full evaluations, and a trial still running at the crash."""
    first = sampler.SamplerService()
    create(first, rng="continuous")
    log = drive(first, [("add", -1, (0, 0, 0, 0), 0.3)])
    log += mipro_calls(first, 14, in_flight=in_flight)
    log += drive(first, [("ask", -1, (), 0.0)])  # running when the plugin dies
    running = log[-1]

    restarted = sampler.SamplerService()
    create(restarted, rng="continuous")
    assert drive(restarted, log) == log

    for service in (first, restarted):
        drive(service, [("tell", running[1], (), score(running[2]))])
    assert mipro_calls(restarted, 10, in_flight=in_flight) == mipro_calls(
        first, 10, in_flight=in_flight
    )


def test_continuous_full_evaluation_before_or_after_the_tell() -> None:
    """DSPy adds a full evaluation while its last minibatch trial is still running (inside
    the objective) and tells that trial afterwards; plugins/mipro tells first, then adds.
    The continuous sampler asks the same next trials either way."""
    services = []
    for tell_first in (True, False):
        service = sampler.SamplerService()
        create(service, rng="continuous")
        drive(service, [("add", -1, (0, 0, 0, 0), 0.3)])
        for _ in range(3):
            for _ in range(4):
                ((_, n, i, _),) = drive(service, [("ask", -1, (), 0.0)])
                drive(service, [("tell", n, (), score(i))])
            ((_, last, idx, _),) = drive(service, [("ask", -1, (), 0.0)])
            full = ("add", -1, idx, score(idx) - 0.1)
            last_tell = ("tell", last, (), score(idx))
            drive(service, [last_tell, full] if tell_first else [full, last_tell])
        services.append(service)
    assert mipro_calls(services[0], 12) == mipro_calls(services[1], 12)


def test_trials_in_flight_and_replayed_running() -> None:
    """Several trials asked before any is told; a restart replays them as running, and
    they are told afterwards under the same numbers."""
    first = sampler.SamplerService()
    create(first, constant_liar="true")
    first.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    ask_tell(first, 11)
    in_flight = [first.ask(plugin_pb2.AskRequest(study_id="s")) for _ in range(3)]
    assert [a.trial_number for a in in_flight] == [12, 13, 14]
    assert len({indices(a.params) for a in in_flight}) > 1

    restarted = sampler.SamplerService()
    create(restarted, constant_liar="true")
    past = history(first)
    assert [p.state for p in past[-3:]] == ["running"] * 3
    restarted.replay(plugin_pb2.ReplayRequest(study_id="s", trials=past))
    nexts = [service.ask(plugin_pb2.AskRequest(study_id="s")) for service in (first, restarted)]
    assert nexts[0] == nexts[1]
    assert nexts[0].trial_number == 15
    # Tell the trials in flight in both, in the same order, under their numbers.
    for service in (first, restarted):
        for a in in_flight:
            service.tell(
                plugin_pb2.TellRequest(
                    study_id="s", trial_number=a.trial_number, value=score(indices(a.params))
                )
            )
        service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=15, state="fail"))
    assert ask_tell(restarted, 5) == ask_tell(first, 5)


# ---- Fused calls (AskRequest.before, ReplayRequest.before) --------------------------


def change_of(op: Op) -> plugin_pb2.StudyChange:
    kind, number, idx, value = op
    if kind == "tell":
        return plugin_pb2.StudyChange(tell=plugin_pb2.TellRequest(trial_number=number, value=value))
    trial = plugin_pb2.PastTrial(params=params_of(idx), value=value)
    return plugin_pb2.StudyChange(replay=plugin_pb2.ReplayRequest(trials=[trial]))


def fused_drive(service: sampler.SamplerService, ops: Sequence[Op]) -> tuple[list[Op], int]:
    """:func:`drive` as plugins/mipro makes the calls with a fused sampler: the tells and
    added trials before an ask ride on it (AskRequest.before), those after the last ask
    on a last replay (ReplayRequest.before) or as calls of their own. Returns the calls
    made, as logged, and the number of round trips."""
    log: list[Op] = []
    calls = 0
    waiting: list[Op] = []
    for op in ops:
        if op[0] != "ask":
            waiting.append(op)
            continue
        got = service.ask(
            plugin_pb2.AskRequest(study_id="s", before=[change_of(w) for w in waiting])
        )
        calls += 1
        assert got.applied == len(waiting)
        asked = (got.trial_number, indices(got.params))
        if op[1] >= 0:
            assert asked == (op[1], op[2])
        log += [*waiting, ("ask", *asked, 0.0)]
        waiting = []
    if waiting and waiting[-1][0] == "add":
        last = change_of(waiting[-1]).replay
        got_replay = service.replay(
            plugin_pb2.ReplayRequest(
                study_id="s", trials=last.trials, before=[change_of(w) for w in waiting[:-1]]
            )
        )
        calls += 1
        assert got_replay.applied == len(waiting) - 1
        log += waiting
    elif waiting:
        calls += len(waiting)
        log += drive(service, waiting)
    return log, calls


@pytest.mark.parametrize("rng", sampler.RNG_MODES)
@pytest.mark.parametrize("in_flight", [1, 3])
def test_fused_calls_are_the_calls_they_carry(rng: str, in_flight: int) -> None:
    """A tell or replay carried by the next ask (or by a replay) changes the study as the
    call of its own would: MIPROv2's calls made both ways ask the same trials, also
    afterwards, with either RNG rule, in fewer round trips."""
    plain = sampler.SamplerService()
    create(plain, rng=rng)
    log = drive(plain, [("add", -1, (0, 0, 0, 0), 0.3)])
    log += mipro_calls(plain, 15, in_flight=in_flight)

    fused = sampler.SamplerService()
    create(fused, rng=rng)
    again, calls = fused_drive(fused, log)
    assert again == log
    assert calls < len(log) * 2 // 3
    assert history(fused) == history(plain)
    assert mipro_calls(fused, 8, in_flight=in_flight) == mipro_calls(plain, 8, in_flight=in_flight)


def test_create_study_says_it_takes_fused_calls() -> None:
    service = sampler.SamplerService()
    request = plugin_pb2.CreateStudyRequest(study_id="s", space=space(), seed=9)
    assert service.create_study(request).fused_calls


def test_a_running_trial_replayed_and_told_in_one_call() -> None:
    """A restart replays a trial in flight as running; its tell may ride on the same
    call, after it."""
    service = sampler.SamplerService()
    create(service)
    running = plugin_pb2.PastTrial(params=params_of((1, 1, 1, 1)), state="running")
    got = service.ask(
        plugin_pb2.AskRequest(
            study_id="s",
            before=[
                plugin_pb2.StudyChange(replay=plugin_pb2.ReplayRequest(trials=[baseline()])),
                plugin_pb2.StudyChange(replay=plugin_pb2.ReplayRequest(trials=[running])),
                plugin_pb2.StudyChange(
                    tell=plugin_pb2.TellRequest(study_id="s", trial_number=1, value=0.7)
                ),
            ],
        )
    )
    assert (got.applied, got.trial_number) == (3, 2)
    trials = service._studies["s"].study.get_trials(deepcopy=False)
    assert [(t.state.name, t.value) for t in trials[:2]] == [("COMPLETE", 0.3), ("COMPLETE", 0.7)]


def tell_change(number: int, value: float = 0.5, **more: str) -> plugin_pb2.StudyChange:
    return plugin_pb2.StudyChange(
        tell=plugin_pb2.TellRequest(trial_number=number, value=value, **more)
    )


@pytest.mark.parametrize(
    ("before", "code", "message"),
    [
        ([tell_change(0), tell_change(9)], "NOT_FOUND", r"before\[1\]: .*no trial 9"),
        (
            [tell_change(1), tell_change(0), tell_change(1)],
            "FAILED_PRECONDITION",
            r"before\[2\]: trial 1 .* already finished by an earlier change",
        ),
        ([tell_change(0, float("nan"))], "INVALID_ARGUMENT", r"before\[0\]: .*not finite"),
        ([tell_change(0, state="done")], "INVALID_ARGUMENT", r"before\[0\]: state"),
        ([tell_change(0, study_id="t")], "INVALID_ARGUMENT", r"a tell of study 't'"),
        ([plugin_pb2.StudyChange()], "INVALID_ARGUMENT", r"before\[0\]: neither"),
        (
            [
                tell_change(0),
                plugin_pb2.StudyChange(
                    replay=plugin_pb2.ReplayRequest(trials=[baseline()], before=[tell_change(1)])
                ),
            ],
            "INVALID_ARGUMENT",
            r"before\[1\]: a replay that carries changes",
        ),
        (
            [plugin_pb2.StudyChange(replay=plugin_pb2.ReplayRequest(study_id="t"))],
            "INVALID_ARGUMENT",
            r"a replay of study 't'",
        ),
        (
            [
                tell_change(0),
                plugin_pb2.StudyChange(
                    replay=plugin_pb2.ReplayRequest(
                        trials=[plugin_pb2.PastTrial(params=params_of((9, 0, 0, 0)))]
                    )
                ),
            ],
            "INVALID_ARGUMENT",
            r"before\[1\]: .*'9' is outside",
        ),
    ],
)
def test_a_refused_change_makes_none(
    before: list[plugin_pb2.StudyChange], code: str, message: str
) -> None:
    """The changes of a call are all checked before any is made: a refused one (named by
    its place) leaves the study as it was, and nothing is asked or replayed."""
    service = sampler.SamplerService()
    create(service)
    for _ in range(2):
        service.ask(plugin_pb2.AskRequest(study_id="s"))
    trials = service._studies["s"].study.get_trials
    for call in (
        lambda: service.ask(plugin_pb2.AskRequest(study_id="s", before=before)),
        lambda: service.replay(
            plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()], before=before)
        ),
    ):
        with pytest.raises(sampler.SamplerError, match=message) as err:
            call()
        assert code_of(err).name == code
        assert [t.state.name for t in trials(deepcopy=False)] == ["RUNNING", "RUNNING"]


# ---- rng=trial: a sampler reseeded in place ----------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"constant_liar": "true", "n_startup_trials": "4"},
        {"multivariate": "false", "n_startup_trials": "3"},
        {"sampler": "random"},
    ],
)
def test_reseed_asks_what_a_new_sampler_asks(
    options: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rng=trial reseeds the study's TPE or random sampler for each ask instead of building
    one: both ask the same trials, with trials in flight, pruned, failed and replayed
    ones, and after a restart replays the history into a fresh study."""
    reseeded = sampler.SamplerService()
    create(reseeded, options=options)
    made = 0
    real = sampler.reseed

    def counted(s: Any, seed: int) -> bool:
        nonlocal made
        ok = real(s, seed)
        made += ok
        return ok

    monkeypatch.setattr(sampler, "reseed", counted)

    def scenario(service: sampler.SamplerService) -> list[Op]:
        log = drive(service, [("add", -1, (0, 0, 0, 0), 0.3)])
        log += mipro_calls(service, 7, in_flight=3)
        asked = [service.ask(plugin_pb2.AskRequest(study_id="s")) for _ in range(2)]
        service.tell(
            plugin_pb2.TellRequest(study_id="s", trial_number=asked[0].trial_number, state="pruned")
        )
        service.tell(
            plugin_pb2.TellRequest(study_id="s", trial_number=asked[1].trial_number, state="fail")
        )
        running = plugin_pb2.PastTrial(params=params_of((4, 3, 2, 5)), state="running")
        service.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[running]))
        log += mipro_calls(service, 8, in_flight=2)
        return log

    want = scenario(reseeded)
    assert made > 10

    monkeypatch.setattr(sampler, "reseed", lambda s, seed: False)
    built = sampler.SamplerService()
    create(built, options=options)
    assert scenario(built) == want

    monkeypatch.setattr(sampler, "reseed", real)
    restarted = sampler.SamplerService()
    create(restarted, options=options)
    restarted.replay(plugin_pb2.ReplayRequest(study_id="s", trials=history(reseeded)))
    assert mipro_calls(restarted, 6, in_flight=2) == mipro_calls(built, 6, in_flight=2)


def test_reseed_takes_tpe_and_random_only() -> None:
    sampler.load_optuna()
    assert sampler.reseed(optuna.samplers.TPESampler(seed=1), 2)
    assert sampler.reseed(optuna.samplers.RandomSampler(seed=1), 2)
    assert not sampler.reseed(optuna.samplers.NSGAIISampler(seed=1), 2)

    mine = type("Mine", (optuna.samplers.TPESampler,), {})
    assert not sampler.reseed(mine(seed=1), 2)


def test_tell_states() -> None:
    service = sampler.SamplerService()
    create(service)
    numbers = [service.ask(plugin_pb2.AskRequest(study_id="s")).trial_number for _ in range(3)]
    service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=numbers[0], state="pruned"))
    service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=numbers[1], state="FAIL"))
    service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=numbers[2], value=0.5))
    states = [t.state.name for t in service._studies["s"].study.trials]
    assert states == ["PRUNED", "FAIL", "COMPLETE"]
    assert service.best(plugin_pb2.BestRequest(study_id="s")).trial_number == numbers[2]


@pytest.mark.parametrize("name", sampler.SAMPLERS)
def test_each_sampler_by_option_and_by_configuration(name: str) -> None:
    by_option = sampler.SamplerService()
    create(by_option, sampler=name)
    by_config = sampler.SamplerService(default_sampler=name)
    create(by_config)
    assert by_config._studies["s"].sampler == name
    assert ask_tell(by_config, 12) == ask_tell(by_option, 12)


def test_samplers_are_what_they_say() -> None:
    """Each name builds its Optuna sampler. TPE's first 10 trials (n_startup_trials) and
    NSGA-II's first generation draw from a RandomSampler with the same seed, so they
    agree with ``random`` that far; TPE's model then asks something else."""
    classes = {}
    runs = {}
    for name in sampler.SAMPLERS:
        service = sampler.SamplerService()
        create(service, sampler=name)
        runs[name] = ask_tell(service, 16)
        classes[name] = type(service._studies["s"].study.sampler).__name__
    assert classes == {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "nsgaii": "NSGAIISampler",
        "bruteforce": "GoDrivenBruteForce",
    }
    assert runs["tpe"][:10] == runs["random"][:10]
    assert runs["tpe"][10:] != runs["random"][10:]
    assert runs["bruteforce"] != runs["random"]
    assert len({idx for _, idx in runs["bruteforce"]}) == 16


def test_int_and_float_ranges() -> None:
    service = sampler.SamplerService()
    service.create_study(
        plugin_pb2.CreateStudyRequest(
            study_id="r",
            seed=1,
            space=[
                plugin_pb2.SearchParam(
                    name="k", int_range=plugin_pb2.IntRange(low=1, high=9, step=2)
                ),
                plugin_pb2.SearchParam(
                    name="lr", float_range=plugin_pb2.FloatRange(low=1e-4, high=1.0, log=True)
                ),
            ],
        )
    )
    for _ in range(5):
        got = service.ask(plugin_pb2.AskRequest(study_id="r"))
        assert got.params["k"].int_value in (1, 3, 5, 7, 9)
        assert 1e-4 <= got.params["lr"].float_value <= 1.0
        service.tell(plugin_pb2.TellRequest(study_id="r", trial_number=got.trial_number, value=1.0))
    past = plugin_pb2.PastTrial(
        params={
            "k": plugin_pb2.ParamValue(int_value=3),
            "lr": plugin_pb2.ParamValue(float_value=0.01),
        },
        value=2.0,
    )
    assert service.replay(plugin_pb2.ReplayRequest(study_id="r", trials=[past])).trials == 6
    assert service.best(plugin_pb2.BestRequest(study_id="r")).params["k"].int_value == 3


def test_studies_are_bounded() -> None:
    service = sampler.SamplerService(max_studies=2)
    for study_id in ("a", "b", "c"):
        create(service, study_id=study_id)
    with pytest.raises(sampler.SamplerError) as err:
        service.ask(plugin_pb2.AskRequest(study_id="a"))
    assert code_of(err) == grpc.StatusCode.NOT_FOUND
    service.ask(plugin_pb2.AskRequest(study_id="c"))


def cat(name: str, *choices: str) -> plugin_pb2.SearchParam:
    return plugin_pb2.SearchParam(name=name, categorical=plugin_pb2.Categorical(choices=choices))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (plugin_pb2.CreateStudyRequest(), "empty search space"),
        (plugin_pb2.CreateStudyRequest(space=[cat("", "a")]), "without a name"),
        (plugin_pb2.CreateStudyRequest(space=[cat("a", "x"), cat("a", "y")]), "given twice"),
        (plugin_pb2.CreateStudyRequest(space=[cat("a")]), "without choices"),
        (plugin_pb2.CreateStudyRequest(space=[cat("a", "x", "x")]), "choice is given twice"),
        (plugin_pb2.CreateStudyRequest(space=[plugin_pb2.SearchParam(name="a")]), "no kind"),
        (
            plugin_pb2.CreateStudyRequest(
                space=[
                    plugin_pb2.SearchParam(name="a", int_range=plugin_pb2.IntRange(low=5, high=1))
                ]
            ),
            "search parameter 'a'",
        ),
        (
            plugin_pb2.CreateStudyRequest(
                space=[
                    plugin_pb2.SearchParam(
                        name="a", float_range=plugin_pb2.FloatRange(low=0, high=1, log=True)
                    )
                ]
            ),
            "search parameter 'a'",
        ),
        (plugin_pb2.CreateStudyRequest(space=[cat("a", "x")], direction="up"), "direction"),
        (plugin_pb2.CreateStudyRequest(space=[cat("a", "x")], seed=-1), "seed"),
        (plugin_pb2.CreateStudyRequest(space=[cat("a", "x")], seed=2**32), "seed"),
        (
            plugin_pb2.CreateStudyRequest(space=[cat("a", "x")], sampler_options={"sampler": "gp"}),
            "unknown sampler 'gp'",
        ),
        (
            plugin_pb2.CreateStudyRequest(
                space=[cat("a", "x")], sampler_options={"sampler": "random", "multivariate": "true"}
            ),
            "unknown sampler options",
        ),
        (
            plugin_pb2.CreateStudyRequest(space=[cat("a", "x")], sampler_options={"rng": "global"}),
            "rng",
        ),
        (
            plugin_pb2.CreateStudyRequest(
                space=[cat("a", "x")], sampler_options={"constant_liar": "maybe"}
            ),
            "true or false",
        ),
        (
            plugin_pb2.CreateStudyRequest(
                space=[cat("a", "x")], sampler_options={"n_startup_trials": "-1"}
            ),
            "at least 0",
        ),
    ],
)
def test_bad_studies_are_invalid_arguments(
    request_: plugin_pb2.CreateStudyRequest, message: str
) -> None:
    with pytest.raises(sampler.SamplerError, match=message) as err:
        sampler.SamplerService().create_study(request_)
    assert code_of(err) == grpc.StatusCode.INVALID_ARGUMENT


def test_call_errors() -> None:
    service = sampler.SamplerService()
    calls: list[Callable[[], object]] = [
        lambda: service.ask(plugin_pb2.AskRequest(study_id="nope")),
        lambda: service.tell(plugin_pb2.TellRequest(study_id="nope")),
        lambda: service.best(plugin_pb2.BestRequest(study_id="nope")),
        lambda: service.replay(plugin_pb2.ReplayRequest(study_id="nope")),
    ]
    for call in calls:
        with pytest.raises(sampler.SamplerError, match="no study 'nope'") as err:
            call()
        assert code_of(err) == grpc.StatusCode.NOT_FOUND

    create(service)
    got = service.ask(plugin_pb2.AskRequest(study_id="s"))
    cases = [
        (plugin_pb2.TellRequest(study_id="s", trial_number=7, value=1), "NOT_FOUND", "no trial 7"),
        (plugin_pb2.TellRequest(study_id="s", trial_number=-1, value=1), "NOT_FOUND", "no trial"),
        (
            plugin_pb2.TellRequest(study_id="s", trial_number=0, value=float("nan")),
            "INVALID_ARGUMENT",
            "not finite",
        ),
        (
            plugin_pb2.TellRequest(study_id="s", trial_number=0, state="done"),
            "INVALID_ARGUMENT",
            "state",
        ),
    ]
    for request_, code, message in cases:
        with pytest.raises(sampler.SamplerError, match=message) as err:
            service.tell(request_)
        assert code_of(err).name == code
    service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=got.trial_number, value=1))
    with pytest.raises(sampler.SamplerError, match="already complete") as err:
        service.tell(plugin_pb2.TellRequest(study_id="s", trial_number=got.trial_number, value=2))
    assert code_of(err) == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.params.pop("0_predictor_demos"), "missing"),
        (
            lambda p: p.params["x"].CopyFrom(plugin_pb2.ParamValue(categorical="0")),
            "not in the space",
        ),
        (
            lambda p: p.params["0_predictor_demos"].CopyFrom(
                plugin_pb2.ParamValue(categorical="9")
            ),
            "outside",
        ),
        (
            lambda p: p.params["0_predictor_demos"].CopyFrom(plugin_pb2.ParamValue(int_value=1)),
            "int_value",
        ),
        (lambda p: setattr(p, "value", float("inf")), "not finite"),
        (lambda p: setattr(p, "state", "waiting"), "state"),
    ],
)
def test_bad_replays_add_nothing(change: object, message: str) -> None:
    service = sampler.SamplerService()
    create(service)
    bad = baseline()
    change(bad)  # type: ignore[operator]
    with pytest.raises(sampler.SamplerError, match=message) as err:
        service.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline(), bad]))
    assert code_of(err) == grpc.StatusCode.INVALID_ARGUMENT
    assert service._studies["s"].study.trials == []


def test_without_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(
        sampler.SamplerError, match=r"pip install 'dspex_plugins\[sampler\]'"
    ) as err:
        create(sampler.SamplerService())
    assert code_of(err) == grpc.StatusCode.FAILED_PRECONDITION


# ---- Through gRPC -------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[plugin_pb2_grpc.SamplerStub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    plugin_pb2_grpc.add_SamplerServicer_to_server(sampler.SamplerService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield plugin_pb2_grpc.SamplerStub(channel)
    finally:
        server.stop(None)


def rpc_rounds(stub: plugin_pb2_grpc.SamplerStub, study_id: str, n: int) -> list[Round]:
    out: list[Round] = []
    for _ in range(n):
        got = stub.Ask(plugin_pb2.AskRequest(study_id=study_id), timeout=10)
        idx = indices(got.params)
        stub.Tell(
            plugin_pb2.TellRequest(
                study_id=study_id, trial_number=got.trial_number, value=score(idx)
            ),
            timeout=10,
        )
        out.append((got.trial_number, idx))
    return out


def test_grpc_round_trip_and_statuses(stub: plugin_pb2_grpc.SamplerStub) -> None:
    created = stub.CreateStudy(plugin_pb2.CreateStudyRequest(space=space(), seed=9), timeout=10)
    study_id = created.study_id
    stub.Replay(plugin_pb2.ReplayRequest(study_id=study_id, trials=[baseline()]), timeout=10)
    direct = sampler.SamplerService()
    create(direct)
    direct.replay(plugin_pb2.ReplayRequest(study_id="s", trials=[baseline()]))
    assert rpc_rounds(stub, study_id, 12) == ask_tell(direct, 12)
    assert stub.Best(plugin_pb2.BestRequest(study_id=study_id), timeout=10).found

    # Trials in flight at once, from several threads.
    with futures.ThreadPoolExecutor(4) as pool:
        asked = list(
            pool.map(
                lambda _: stub.Ask(plugin_pb2.AskRequest(study_id=study_id), timeout=10), range(8)
            )
        )
    assert sorted(a.trial_number for a in asked) == list(range(13, 21))

    # Their tells ride on the next ask; a refused one makes none of them.
    tells = [tell_change(a.trial_number, score(indices(a.params))) for a in asked]
    with pytest.raises(grpc.RpcError) as refused:
        stub.Ask(plugin_pb2.AskRequest(study_id=study_id, before=[*tells, tells[0]]), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "before[8]" in str(refused.value.details())
    got = stub.Ask(plugin_pb2.AskRequest(study_id=study_id, before=tells), timeout=10)
    assert (got.applied, got.trial_number) == (8, 21)
    assert created.fused_calls

    rpcs: list[tuple[Callable[[], object], str]] = [
        (lambda: stub.Ask(plugin_pb2.AskRequest(study_id="nope"), timeout=10), "NOT_FOUND"),
        (
            lambda: stub.Tell(
                plugin_pb2.TellRequest(study_id=study_id, trial_number=99, value=1), timeout=10
            ),
            "NOT_FOUND",
        ),
        (lambda: stub.CreateStudy(plugin_pb2.CreateStudyRequest(), timeout=10), "INVALID_ARGUMENT"),
    ]
    for call, code in rpcs:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code().name == code


# ---- The plugin process -------------------------------------------------------------


def test_plugin_process(launch: Launch) -> None:
    plugin = launch(SAMPLER, env={sampler.SAMPLER_ENV: "random"})
    with plugin.channel() as channel:
        info = plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=10)
        assert info.name == "sampler"
        assert list(info.capabilities) == ["sampler"]
        assert info.details["optuna"] == optuna.__version__
        assert info.details["default_sampler"] == "random"
        stub = plugin_pb2_grpc.SamplerStub(channel)
        stub.CreateStudy(
            plugin_pb2.CreateStudyRequest(study_id="p", space=space(), seed=3), timeout=30
        )
        direct = sampler.SamplerService()
        create(direct, seed=3, study_id="p", sampler="random")
        assert rpc_rounds(stub, "p", 5) == ask_tell(direct, 5, study_id="p")


def test_plugin_process_without_optuna(launch: Launch, tmp_path: Path) -> None:
    (tmp_path / "optuna.py").write_text("raise ImportError('No module named optuna')\n")
    pythonpath = ":".join([str(tmp_path), *[p for p in sys.path if p]])
    plugin = launch(SAMPLER, env={"PYTHONPATH": pythonpath})
    with plugin.channel() as channel:
        info = plugin_pb2_grpc.PluginInfoStub(channel).Info(plugin_pb2.InfoRequest(), timeout=10)
        assert list(info.capabilities) == ["sampler"]
        with pytest.raises(grpc.RpcError) as err:
            plugin_pb2_grpc.SamplerStub(channel).CreateStudy(
                plugin_pb2.CreateStudyRequest(space=space()), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "pip install 'dspex_plugins[sampler]'" in (err.value.details() or "")
