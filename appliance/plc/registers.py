"""The Modbus register map of the vision-sensor handshake, and the PLC error codes.

Stable: PLC programs depend on these addresses and codes. docs/plc.md documents them; change
neither without a new map version there. Addresses are zero-based protocol addresses (a PLC that
counts from 1 adds 1: coil 0 is 00001, input register 0 is 30001).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ERROR_INTERNAL, ApplianceError, error_code

# coils: written by the PLC
COIL_TRIGGER = 0  # PLC writes 1; the appliance clears it once it took the trigger
COIL_RESULTS_ACK = 1  # PLC writes 1: result valid (and pass, error) drop; the appliance clears it
COIL_RESET_COUNTERS = 2  # PLC writes 1: every production counter is zeroed; the appliance clears it
COILS = 3

# discrete inputs: written by the appliance
DI_READY = 0  # a model is active and no trigger or job change is running
DI_BUSY = 1
DI_RESULT_VALID = 2
DI_PASS = 3
DI_ERROR = 4
DISCRETE_INPUTS = 5

# input registers: written by the appliance
IR_SEQUENCE = 0  # result sequence number modulo 65536
IR_LABEL_ID = 1  # top label id; NO_LABEL when there is none
IR_SCORE = 2  # top score x SCORE_SCALE
IR_COUNT = 3  # detections (objects)
IR_LATENCY_HIGH = 4  # latency in microseconds, 32 bits, high word first
IR_LATENCY_LOW = 5
IR_MODEL_SLOT = 6  # slot of the active model in plc.model_slots; 0 when it has none
IR_ERROR_CODE = 7
# inspection jobs (map version 2): the active job, the last result's verdict, production counters
IR_JOB = 8  # number of the active inspection job; 0: none (the [inspection] rule decides)
IR_RESULT_JOB = 9  # job that judged the last result (0: none)
IR_PASS_BITS = 10  # bit N-1 set for every region N that passed
IR_REASON_CODE = 11  # cause of the first NG reason (docs/inspection.md); 0 when OK
IR_NG_REGION = 12  # region of that reason (0: OK, or the job as a whole)
IR_REGIONS = 13  # regions the job judged (bits above this count are always 0)
IR_COUNTERS_JOB = 14  # counters of the active job (the total when none): COUNTER_WORDS registers
IR_COUNTERS_TOTAL = 33  # counters over every job
COUNTER_WORDS = 19  # triggers, ok, ng, errors, missed (2 words each), yield, min/avg/max us, reset (2 each)
INPUT_REGISTERS = 52

# holding registers: written by the PLC
HR_MODEL_SLOT = 0  # job change: the appliance activates the model of this slot; 0 keeps the model
HR_JOB_NUMBER = 1  # job change by number (1-999): proven, then active; 0 keeps the job
HOLDING_REGISTERS = 2

WORD = 0xFFFF
DOUBLE_WORD = 0xFFFF_FFFF
SCORE_SCALE = 1000
NO_LABEL = WORD  # reads as -1 in a signed INT

# error codes (input register 7); 1-5 and 9 are the codes of appliance.errors.error_code
ERROR_NONE = 0
ERROR_BUSY = 1
ERROR_NO_FRAME = 2
ERROR_NO_MODEL = 3
ERROR_MODEL_LOAD = 4
ERROR_UNMAPPED_SLOT = 6
ERROR_UNKNOWN_JOB = 7  # job change to a number with no stored job
ERROR_JOB_LOAD = 8  # the job's models cannot be loaded or proven
NO_YIELD = WORD  # yield register before any OK or NG
# 5 (ERROR_TIMEOUT) and 9 (ERROR_INTERNAL) are defined in appliance.errors


def code_of(err: BaseException) -> int:
    """The PLC error code of an exception raised by a trigger."""
    if isinstance(err, ApplianceError):
        return error_code(err)
    return ERROR_INTERNAL


@dataclass(frozen=True)
class Reading:
    """Everything a PLC reads, as one consistent snapshot."""

    ready: bool = False
    busy: bool = False
    result_valid: bool = False
    passed: bool = False
    error: bool = False
    sequence: int = 0
    label_id: int = NO_LABEL
    score: int = 0
    count: int = 0
    latency_us: int = 0
    model_slot: int = 0
    error_code: int = ERROR_NONE
    job: int = 0
    result_job: int = 0
    pass_bits: int = 0
    reason_code: int = 0
    ng_region: int = 0
    regions: int = 0
    job_counters: tuple[int, ...] = (0,) * COUNTER_WORDS
    total_counters: tuple[int, ...] = (0,) * COUNTER_WORDS


def _double(value: float | None) -> tuple[int, int]:
    v = 0 if value is None else max(0, min(DOUBLE_WORD, round(value)))
    return v >> 16, v & WORD


def counter_words(
    counts: tuple[int, int, int, int, int],
    yield_pct: float | None,
    times_ms: tuple[float | None, float | None, float | None],
    reset_at: float,
) -> tuple[int, ...]:
    """One counter block: triggers, ok, ng, errors, missed (32 bits each, high word first), yield in
    0.01 % (NO_YIELD before any verdict), min/avg/max processing time in us (32 bits), reset time
    (epoch seconds, 32 bits)."""
    words: list[int] = []
    for count in counts:
        words.extend(_double(count))
    words.append(NO_YIELD if yield_pct is None else round(yield_pct * 100))
    for ms in times_ms:
        words.extend(_double(None if ms is None else ms * 1000))
    words.extend(_double(reset_at))
    return tuple(words)


def word(value: int) -> int:
    """Clamp to an unsigned 16-bit register."""
    return max(0, min(WORD, value))


def discrete_inputs(reading: Reading) -> list[bool]:
    bits = [False] * DISCRETE_INPUTS
    bits[DI_READY] = reading.ready
    bits[DI_BUSY] = reading.busy
    bits[DI_RESULT_VALID] = reading.result_valid
    bits[DI_PASS] = reading.passed
    bits[DI_ERROR] = reading.error
    return bits


def input_registers(reading: Reading) -> list[int]:
    latency = max(0, min(DOUBLE_WORD, reading.latency_us))
    registers = [0] * INPUT_REGISTERS
    registers[IR_SEQUENCE] = reading.sequence & WORD
    registers[IR_LABEL_ID] = word(reading.label_id)
    registers[IR_SCORE] = word(reading.score)
    registers[IR_COUNT] = word(reading.count)
    registers[IR_LATENCY_HIGH] = latency >> 16
    registers[IR_LATENCY_LOW] = latency & WORD
    registers[IR_MODEL_SLOT] = word(reading.model_slot)
    registers[IR_ERROR_CODE] = word(reading.error_code)
    registers[IR_JOB] = word(reading.job)
    registers[IR_RESULT_JOB] = word(reading.result_job)
    registers[IR_PASS_BITS] = word(reading.pass_bits)
    registers[IR_REASON_CODE] = word(reading.reason_code)
    registers[IR_NG_REGION] = word(reading.ng_region)
    registers[IR_REGIONS] = word(reading.regions)
    registers[IR_COUNTERS_JOB : IR_COUNTERS_JOB + COUNTER_WORDS] = [word(w) for w in reading.job_counters]
    registers[IR_COUNTERS_TOTAL : IR_COUNTERS_TOTAL + COUNTER_WORDS] = [
        word(w) for w in reading.total_counters
    ]
    return registers
