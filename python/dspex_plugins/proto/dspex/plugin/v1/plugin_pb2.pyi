from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("name", "version", "capabilities", "protocol", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    protocol: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., protocol: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("message", "payload")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    message: str
    payload: bytes
    def __init__(self, message: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("message", "payload", "pid")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    message: str
    payload: bytes
    pid: int
    def __init__(self, message: _Optional[str] = ..., payload: _Optional[bytes] = ..., pid: _Optional[int] = ...) -> None: ...

class SleepRequest(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    def __init__(self, seconds: _Optional[float] = ...) -> None: ...

class SleepResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CrashRequest(_message.Message):
    __slots__ = ("exit_code",)
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    def __init__(self, exit_code: _Optional[int] = ...) -> None: ...

class CrashResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchParam(_message.Message):
    __slots__ = ("name", "categorical", "int_range", "float_range")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    INT_RANGE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_RANGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    categorical: Categorical
    int_range: IntRange
    float_range: FloatRange
    def __init__(self, name: _Optional[str] = ..., categorical: _Optional[_Union[Categorical, _Mapping]] = ..., int_range: _Optional[_Union[IntRange, _Mapping]] = ..., float_range: _Optional[_Union[FloatRange, _Mapping]] = ...) -> None: ...

class Categorical(_message.Message):
    __slots__ = ("choices",)
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    choices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, choices: _Optional[_Iterable[str]] = ...) -> None: ...

class IntRange(_message.Message):
    __slots__ = ("low", "high", "step", "log")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    step: int
    log: bool
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., step: _Optional[int] = ..., log: _Optional[bool] = ...) -> None: ...

class FloatRange(_message.Message):
    __slots__ = ("low", "high", "step", "log")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    step: float
    log: bool
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ..., step: _Optional[float] = ..., log: _Optional[bool] = ...) -> None: ...

class ParamValue(_message.Message):
    __slots__ = ("categorical", "int_value", "float_value")
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    categorical: str
    int_value: int
    float_value: float
    def __init__(self, categorical: _Optional[str] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ...) -> None: ...

class CreateStudyRequest(_message.Message):
    __slots__ = ("study_id", "space", "direction", "seed", "sampler_options")
    class SamplerOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    space: _containers.RepeatedCompositeFieldContainer[SearchParam]
    direction: str
    seed: int
    sampler_options: _containers.ScalarMap[str, str]
    def __init__(self, study_id: _Optional[str] = ..., space: _Optional[_Iterable[_Union[SearchParam, _Mapping]]] = ..., direction: _Optional[str] = ..., seed: _Optional[int] = ..., sampler_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateStudyResponse(_message.Message):
    __slots__ = ("study_id", "fused_calls")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    FUSED_CALLS_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    fused_calls: bool
    def __init__(self, study_id: _Optional[str] = ..., fused_calls: _Optional[bool] = ...) -> None: ...

class StudyChange(_message.Message):
    __slots__ = ("tell", "replay")
    TELL_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    tell: TellRequest
    replay: ReplayRequest
    def __init__(self, tell: _Optional[_Union[TellRequest, _Mapping]] = ..., replay: _Optional[_Union[ReplayRequest, _Mapping]] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("study_id", "before")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    before: _containers.RepeatedCompositeFieldContainer[StudyChange]
    def __init__(self, study_id: _Optional[str] = ..., before: _Optional[_Iterable[_Union[StudyChange, _Mapping]]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("trial_number", "params", "applied")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    trial_number: int
    params: _containers.MessageMap[str, ParamValue]
    applied: int
    def __init__(self, trial_number: _Optional[int] = ..., params: _Optional[_Mapping[str, ParamValue]] = ..., applied: _Optional[int] = ...) -> None: ...

class TellRequest(_message.Message):
    __slots__ = ("study_id", "trial_number", "value", "state")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    trial_number: int
    value: float
    state: str
    def __init__(self, study_id: _Optional[str] = ..., trial_number: _Optional[int] = ..., value: _Optional[float] = ..., state: _Optional[str] = ...) -> None: ...

class TellResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BestRequest(_message.Message):
    __slots__ = ("study_id",)
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    def __init__(self, study_id: _Optional[str] = ...) -> None: ...

class BestResponse(_message.Message):
    __slots__ = ("found", "trial_number", "params", "value")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    trial_number: int
    params: _containers.MessageMap[str, ParamValue]
    value: float
    def __init__(self, found: _Optional[bool] = ..., trial_number: _Optional[int] = ..., params: _Optional[_Mapping[str, ParamValue]] = ..., value: _Optional[float] = ...) -> None: ...

class PastTrial(_message.Message):
    __slots__ = ("params", "value", "state")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParamValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParamValue, _Mapping]] = ...) -> None: ...
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    params: _containers.MessageMap[str, ParamValue]
    value: float
    state: str
    def __init__(self, params: _Optional[_Mapping[str, ParamValue]] = ..., value: _Optional[float] = ..., state: _Optional[str] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("study_id", "trials", "before")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    trials: _containers.RepeatedCompositeFieldContainer[PastTrial]
    before: _containers.RepeatedCompositeFieldContainer[StudyChange]
    def __init__(self, study_id: _Optional[str] = ..., trials: _Optional[_Iterable[_Union[PastTrial, _Mapping]]] = ..., before: _Optional[_Iterable[_Union[StudyChange, _Mapping]]] = ...) -> None: ...

class ReplayResponse(_message.Message):
    __slots__ = ("trials", "applied")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    trials: int
    applied: int
    def __init__(self, trials: _Optional[int] = ..., applied: _Optional[int] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("base_model", "training_jsonl", "hyperparameters", "backend", "backend_options", "idempotency_key")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class BackendOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JSONL_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    training_jsonl: bytes
    hyperparameters: _containers.ScalarMap[str, str]
    backend: str
    backend_options: _containers.ScalarMap[str, str]
    idempotency_key: str
    def __init__(self, base_model: _Optional[str] = ..., training_jsonl: _Optional[bytes] = ..., hyperparameters: _Optional[_Mapping[str, str]] = ..., backend: _Optional[str] = ..., backend_options: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "fine_tuned_model", "error", "progress", "metrics", "provider_state")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNED_MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_STATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    fine_tuned_model: str
    error: str
    progress: float
    metrics: _containers.ScalarMap[str, float]
    provider_state: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., fine_tuned_model: _Optional[str] = ..., error: _Optional[str] = ..., progress: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., provider_state: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "backend", "backend_options")
    class BackendOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    backend: str
    backend_options: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., backend: _Optional[str] = ..., backend_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "state", "progress", "message", "metrics", "step", "fine_tuned_model", "error")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNED_MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    progress: float
    message: str
    metrics: _containers.ScalarMap[str, float]
    step: int
    fine_tuned_model: str
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., step: _Optional[int] = ..., fine_tuned_model: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "backend", "backend_options")
    class BackendOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    backend: str
    backend_options: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., backend: _Optional[str] = ..., backend_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "backend", "backend_options")
    class BackendOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    backend: str
    backend_options: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., backend: _Optional[str] = ..., backend_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "args_json_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    args_json_schema: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., args_json_schema: _Optional[str] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("tools", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    options: _containers.ScalarMap[str, str]
    def __init__(self, tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StartSessionResponse(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ExecuteClientMessage(_message.Message):
    __slots__ = ("code", "tool_result")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    code: ExecuteCode
    tool_result: ToolResult
    def __init__(self, code: _Optional[_Union[ExecuteCode, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ...) -> None: ...

class ExecuteCode(_message.Message):
    __slots__ = ("session_id", "code", "timeout_seconds")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    code: str
    timeout_seconds: float
    def __init__(self, session_id: _Optional[str] = ..., code: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "result_json", "error")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    result_json: str
    error: str
    def __init__(self, call_id: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ExecuteServerMessage(_message.Message):
    __slots__ = ("tool_call", "output", "result", "error")
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    tool_call: ToolCall
    output: Output
    result: ExecResult
    error: ExecError
    def __init__(self, tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., result: _Optional[_Union[ExecResult, _Mapping]] = ..., error: _Optional[_Union[ExecError, _Mapping]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("call_id", "name", "args_json")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    args_json: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., args_json: _Optional[str] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("stream", "text")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    stream: str
    text: str
    def __init__(self, stream: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Captured(_message.Message):
    __slots__ = ("stdout", "stderr", "truncated")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    stdout: str
    stderr: str
    truncated: bool
    def __init__(self, stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ExecResult(_message.Message):
    __slots__ = ("value_repr", "value_json", "output", "submitted", "submit_json", "tool_calls")
    VALUE_REPR_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    value_repr: str
    value_json: str
    output: Captured
    submitted: bool
    submit_json: str
    tool_calls: int
    def __init__(self, value_repr: _Optional[str] = ..., value_json: _Optional[str] = ..., output: _Optional[_Union[Captured, _Mapping]] = ..., submitted: _Optional[bool] = ..., submit_json: _Optional[str] = ..., tool_calls: _Optional[int] = ...) -> None: ...

class ExecError(_message.Message):
    __slots__ = ("type", "message", "traceback", "output", "killed_by", "tool_calls")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    KILLED_BY_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    output: Captured
    killed_by: str
    tool_calls: int
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ..., output: _Optional[_Union[Captured, _Mapping]] = ..., killed_by: _Optional[str] = ..., tool_calls: _Optional[int] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StopSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
