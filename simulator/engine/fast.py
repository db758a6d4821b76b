"""The numba timing engine: the dispatch rule of engine.taskgraph as an event-driven list scheduler.

Same answer as engine.des (identical start cycles), for the mapping-search inner loop
and big sweeps. Why it is fast (138x the simpy engine, 0.29 s for GPT-2 prefill's 4.3 M
tasks in benchmarks/engine_speed.py):
  * Finish events live in a calendar: one bucket (a linked list threaded through the
    task records) per cycle of a circular window wider than every duration, plus an
    occupancy bitmap to find the next busy cycle. A finish is an O(1) push and a whole
    cycle's finishes are one list, with no comparisons. Events further ahead than the
    window (only with very long tasks) wait in a small overflow heap.
  * Ready tasks are pushed at the current cycle, which never decreases, so each
    resource's queue is a sorted array filled at the back (insertion among the few
    tasks made ready in the same cycle) and emptied at the front: no heap at all.
  * Queue and heap keys are single int64s, cycle << event_bits | event id, so the
    (cycle, task_id) order is plain integer order; a graph's priorities, if it has
    them, sit in a queue key's top bits.
  * A resource is put on the per-cycle pick list only when it will really pick.
  * A start-to-start edge (the TaskGraph's lag CSR) is one more event: when its
    predecessor starts, its release is put in the calendar `lag` cycles ahead (event id
    n_tasks + edge, linked through its own array), and counts the successor down like a
    finish. Graphs without such edges skip the check per start.
The graph is far too big for the caches and the tasks running at one time lie far
apart in id order, so the loop is bound by cache misses, not by instructions. Hence:
  * What the loop touches of a task at its start and finish is one 16-byte record
    (TASK_RECORD), its successor offset included; the successor lists come ready-made
    with the TaskGraph, so a call transposes nothing.
  * Each queue starts in one cache line of its own and only grows (by doubling) when
    more than half full, so the queues of all resources stay in the caches.
  * A task's start prefetches its successor list, which its finish will read; a task
    made ready prefetches its record, read once all finishes of the cycle are done.
  * Predecessor counts are int16 when every in-degree fits.
The main loop visits cycles with finishes in increasing order: it first processes every
finish at the cycle (zero-duration delay tasks may add more finishes at the same cycle,
and are processed in the same pass), then lets each listed resource start its smallest
ready task. Resource tasks last >= 1 cycle, so a pick never adds a finish at the cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.cpython.unsafe.numbers import trailing_zeros

from simulator.engine.taskgraph import Schedule, TaskGraph, check_durations
from simulator.errors import UserError

# What the main loop reads and writes of a task when it starts and finishes: 16 bytes,
# four records per cache line. Its successor list starts at first_successor and ends
# where the next record's starts (one record past the last task holds the end), so
# finding it costs no miss of its own. The predecessor counts stay in a compact array of their
# own: far successors are counted down at random, and 2-4 bytes a task keep those hits
# in the caches far better than a record would.
TASK_RECORD = np.dtype([
    ("duration_cycles", np.int32),
    ("resource", np.int32),
    ("next_in_bucket", np.int32),  # calendar bucket list link
    ("first_successor", np.int32),  # into succ_idx; the next record's ends the list
])
CACHE_LINE_BYTES = 64
INT32_MAX = int(np.iinfo(np.int32).max)

QUEUE_LINE_SLOTS = CACHE_LINE_BYTES // 8  # int64 keys in each resource's first queue region
# A queue of a resource with T tasks moves from a region of S keys to one of 2S only when
# more than S/2 are live, so S < 2T and its regions beyond the first add up to < 8T keys.
QUEUE_GROWTH_KEYS_PER_TASK = 8
MAX_WINDOW_CYCLES = 1 << 16  # calendar buckets at most (256 KiB of list heads)

# Columns of the per-resource queue bounds: a resource's four live together in 32 bytes,
# so a push, a pick or a finish finds them in one cache line (four arrays took up to four).
QUEUE_BOUNDS = ("head", "tail", "region_start", "region_end")
HEAD, TAIL, REGION_START, REGION_END = range(len(QUEUE_BOUNDS))

# Resource states: idle, idle but on this cycle's pick list, serving a task.
IDLE, PICKING, BUSY = 0, 1, 2


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading array[index]'s cache line: no wait, no fault, no result."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_struct = context.make_array(array_type)(context, builder, args[0])
        item = cgutils.get_item_pointer(context, builder, array_type, array_struct, [args[1]], wraparound=False)
        byte_pointer = builder.bitcast(item, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]), "llvm.prefetch.p0i8")
        read, keep_in_all_levels, data = (ir.Constant(i32, value) for value in (0, 3, 1))
        builder.call(prefetch, [byte_pointer, read, keep_in_all_levels, data])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@njit(cache=True)
def _queue_insert(keys, head, tail, key):
    """Insert key into the sorted keys[head:tail] (one slot free at tail), scanning from the back."""
    i = tail
    while i > head and keys[i - 1] > key:
        keys[i] = keys[i - 1]
        i -= 1
    keys[i] = key


@njit(cache=True)
def _cache_aligned_int64(n):
    """Uninitialised int64 array starting on a cache line (a queue's first region, a resource's
    queue bounds: each then sits in one line)."""
    raw = np.empty(n + CACHE_LINE_BYTES // 8, dtype=np.int64)
    offset = (-raw.ctypes.data % CACHE_LINE_BYTES) // 8
    return raw[offset:offset + n]


@njit(cache=True)
def _make_queue_room(keys, pool_end, queues, r):
    """Free the slot after resource r's full queue region; returns the new pool_end.

    A queue starts in a cache line of its own. A full region is compacted to its start
    when at most half of it is live, else the queue moves to a region twice as big at the
    pool's end. So regions stay small and the queues of all resources stay in the caches
    (most tasks are picked in the cycle they become ready), where one region per resource
    sized by its task count made every push and pick a cache miss.
    """
    live = queues[r, TAIL] - queues[r, HEAD]
    size = queues[r, REGION_END] - queues[r, REGION_START]
    if 2 * live > size:
        size *= 2
        queues[r, REGION_START] = pool_end
        queues[r, REGION_END] = pool_end + size
        pool_end += size
    start = queues[r, REGION_START]
    for i in range(live):  # forwards: when compacting, the keys only move down
        keys[start + i] = keys[queues[r, HEAD] + i]
    queues[r, HEAD] = start
    queues[r, TAIL] = start + live
    return pool_end


@njit(cache=True)
def _heap_push(keys, size, key):
    """Push key onto the binary min-heap keys[:size]; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        i = parent
    keys[i] = key
    return size + 1


@njit(cache=True)
def _heap_pop(keys, size):
    """Remove the smallest key of the binary min-heap keys[:size]; returns it."""
    top = keys[0]
    size -= 1
    last = keys[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= last:
            break
        keys[i] = keys[child]
        i = child
    keys[i] = last
    return top


@njit(cache=True)
def _bucket_push(bucket_head, records, occupied, bucket, task):
    """Prepend task to the calendar bucket's list and mark the bucket occupied."""
    records[task].next_in_bucket = bucket_head[bucket]
    bucket_head[bucket] = task
    occupied[bucket >> 6] |= np.uint64(1) << np.uint64(bucket & 63)


@njit(cache=True)
def _lag_bucket_push(bucket_head, lag_next, occupied, bucket, n_tasks, edge):
    """Prepend the release of start-to-start edge `edge` to the calendar bucket's list."""
    lag_next[edge] = bucket_head[bucket]
    bucket_head[bucket] = n_tasks + edge
    occupied[bucket >> 6] |= np.uint64(1) << np.uint64(bucket & 63)


@njit(cache=True)
def _push_lag_events(lag_ptr, lag_cycles, lag_next, bucket_head, occupied, overflow_keys, n_overflow, task, now,
                     n_tasks, window_cycles, event_bits):
    """`task` started at `now`: schedule the release of each of its start-to-start edges."""
    for edge in range(lag_ptr[task], lag_ptr[task + 1]):
        lag = lag_cycles[edge]
        if lag < window_cycles:
            _lag_bucket_push(bucket_head, lag_next, occupied, (now + lag) & (window_cycles - 1), n_tasks, edge)
        else:
            n_overflow = _heap_push(overflow_keys, n_overflow, ((now + lag) << event_bits) | (n_tasks + edge))
    return n_overflow


@njit(cache=True)
def _next_occupied_bucket(occupied, bucket):
    """First occupied bucket after `bucket`, circularly ending at `bucket` itself; -1 if none."""
    n_words = occupied.shape[0]
    word_index = bucket >> 6
    above_bucket = ~((np.uint64(2) << np.uint64(bucket & 63)) - np.uint64(1))  # 0 when bit 63
    word = occupied[word_index] & above_bucket
    for _ in range(n_words + 1):
        if word != 0:
            return (word_index << 6) + np.int64(trailing_zeros(word))
        word_index = (word_index + 1) & (n_words - 1)
        word = occupied[word_index]
    return -1


@njit(cache=True)
def _schedule(records, succ_idx, preds_left, n_resources, event_bits, window_cycles, start_cycles,
              lag_ptr, lag_succ, lag_cycles, priority_keys):
    """Fill start_cycles under the dispatch rule; returns (makespan_cycles, tasks started).

    Events are finishes (id = task) and start-to-start releases (id = n_tasks + edge);
    both sit in the calendar (releases linked through lag_next) and the overflow heap.

    Tasks that never became ready (a cycle in the graph) are not started and keep
    whatever start_cycles held. The last cycle visited is the last finish: the makespan.
    priority_keys (empty: no priorities) holds each task's priority in the queue keys' top bits.
    """
    n_tasks = records.shape[0] - 1
    event_mask = (np.int64(1) << event_bits) - 1
    has_lags = lag_succ.shape[0] > 0
    has_priority = priority_keys.shape[0] > 0
    lag_next = np.empty(lag_succ.shape[0], dtype=np.int32)  # calendar list links of releases
    window_mask = window_cycles - 1
    ready_now = np.empty(n_tasks, dtype=np.int32)  # tasks whose last predecessor finished at `now`
    n_ready_now = 0
    for task in range(n_tasks):
        if preds_left[task] == 0:
            ready_now[n_ready_now] = task
            n_ready_now += 1
    # ready queues: resource r's live keys are queue_keys[queues[r, HEAD]:queues[r, TAIL]], inside
    # its region [queues[r, REGION_START], queues[r, REGION_END]) of the key pool, used up to pool_end
    # (reserved for the worst case; the pages beyond pool_end are never touched, so never mapped)
    pool_end = QUEUE_LINE_SLOTS * n_resources
    queue_keys = _cache_aligned_int64(pool_end + QUEUE_GROWTH_KEYS_PER_TASK * n_tasks)
    queues = _cache_aligned_int64(len(QUEUE_BOUNDS) * n_resources).reshape((n_resources, len(QUEUE_BOUNDS)))
    for r in range(n_resources):
        queues[r, HEAD] = queues[r, TAIL] = queues[r, REGION_START] = r * QUEUE_LINE_SLOTS
        queues[r, REGION_END] = (r + 1) * QUEUE_LINE_SLOTS
    state = np.zeros(n_resources, dtype=np.int8)
    picking = np.empty(n_resources, dtype=np.int32)  # the resources in state PICKING
    n_picking = 0
    # finish events: a calendar for durations below window_cycles, an overflow heap for longer ones
    bucket_head = np.full(window_cycles, -1, dtype=np.int32)
    occupied = np.zeros(window_cycles >> 6, dtype=np.uint64)
    overflow_keys = np.empty(n_tasks + lag_succ.shape[0], dtype=np.int64)
    n_overflow = 0
    n_started = 0

    now = 0
    while True:
        bucket = now & window_mask
        # 1. every finish at `now`, including those of zero-duration delays made ready at `now`
        while True:
            for i in range(n_ready_now):
                task = ready_now[i]
                record = records[task]
                r = record.resource
                if r < 0:  # a delay starts at once
                    start_cycles[task] = now
                    n_started += 1
                    _prefetch(succ_idx, record.first_successor)  # its finish reads the list
                    if has_lags:
                        n_overflow = _push_lag_events(lag_ptr, lag_cycles, lag_next, bucket_head, occupied,
                                                      overflow_keys, n_overflow, task, now, n_tasks,
                                                      window_cycles, event_bits)
                    if record.duration_cycles < window_cycles:
                        _bucket_push(bucket_head, records, occupied,
                                     (now + record.duration_cycles) & window_mask, task)
                    else:
                        n_overflow = _heap_push(overflow_keys, n_overflow,
                                                ((now + record.duration_cycles) << event_bits) | task)
                    continue
                if queues[r, TAIL] == queues[r, REGION_END]:
                    pool_end = _make_queue_room(queue_keys, pool_end, queues, r)
                key = (now << event_bits) | task
                if has_priority:
                    key |= priority_keys[task]
                _queue_insert(queue_keys, queues[r, HEAD], queues[r, TAIL], key)
                queues[r, TAIL] += 1
                if state[r] == IDLE:
                    state[r] = PICKING
                    picking[n_picking] = r
                    n_picking += 1
            n_ready_now = 0
            if bucket_head[bucket] < 0:
                break
            while bucket_head[bucket] >= 0:
                task = bucket_head[bucket]
                if task >= n_tasks:  # a start-to-start release: edge task - n_tasks
                    edge = task - n_tasks
                    bucket_head[bucket] = lag_next[edge]
                    succ = lag_succ[edge]
                    preds_left[succ] -= 1
                    if preds_left[succ] == 0:
                        _prefetch(records, succ)
                        ready_now[n_ready_now] = succ
                        n_ready_now += 1
                    continue
                record = records[task]
                bucket_head[bucket] = record.next_in_bucket
                r = record.resource
                if r >= 0:
                    if queues[r, HEAD] == queues[r, TAIL]:
                        state[r] = IDLE
                    else:
                        state[r] = PICKING
                        picking[n_picking] = r
                        n_picking += 1
                for k in range(record.first_successor, records[task + 1].first_successor):
                    succ = succ_idx[k]
                    preds_left[succ] -= 1
                    if preds_left[succ] == 0:
                        _prefetch(records, succ)  # read once this cycle's finishes are done
                        ready_now[n_ready_now] = succ
                        n_ready_now += 1
        occupied[bucket >> 6] &= ~(np.uint64(1) << np.uint64(bucket & 63))
        # 2. picks at `now`
        for i in range(n_picking):
            r = picking[i]
            task = queue_keys[queues[r, HEAD]] & event_mask
            queues[r, HEAD] += 1
            state[r] = BUSY
            record = records[task]
            start_cycles[task] = now
            n_started += 1
            _prefetch(succ_idx, record.first_successor)  # its finish reads the list
            if has_lags:
                n_overflow = _push_lag_events(lag_ptr, lag_cycles, lag_next, bucket_head, occupied, overflow_keys,
                                              n_overflow, task, now, n_tasks, window_cycles, event_bits)
            if record.duration_cycles < window_cycles:
                _bucket_push(bucket_head, records, occupied, (now + record.duration_cycles) & window_mask, task)
            else:
                n_overflow = _heap_push(overflow_keys, n_overflow, ((now + record.duration_cycles) << event_bits) | task)
        n_picking = 0
        # 3. the next cycle with a finish; overflow finishes at that cycle join its bucket
        next_bucket = _next_occupied_bucket(occupied, bucket)
        if next_bucket >= 0:
            next_cycle = now + ((next_bucket - bucket) & window_mask)
            if n_overflow > 0:
                next_cycle = min(next_cycle, overflow_keys[0] >> event_bits)
        elif n_overflow > 0:
            next_cycle = overflow_keys[0] >> event_bits
        else:
            break
        now = next_cycle
        while n_overflow > 0 and (overflow_keys[0] >> event_bits) == now:
            event = _heap_pop(overflow_keys, n_overflow) & event_mask
            n_overflow -= 1
            if event >= n_tasks:
                _lag_bucket_push(bucket_head, lag_next, occupied, now & window_mask, n_tasks, event - n_tasks)
            else:
                _bucket_push(bucket_head, records, occupied, now & window_mask, event)
    return now, n_started


@njit(cache=True)
def _fill_records(resource, duration_cycles, pred_ptr, succ_ptr, records, preds_left):
    """One pass over the tasks: records (with one more for the end of the last successor
    list) and predecessor counts.

    Returns (durations_valid, longest_cycles, total_cycles); durations are valid when
    none is negative and every resource task lasts >= 1 cycle.
    """
    n_tasks = resource.shape[0]
    durations_valid = True
    longest_cycles = 0
    total_cycles = 0
    for task in range(n_tasks):
        r = resource[task]
        duration = duration_cycles[task]
        record = records[task]
        record.duration_cycles = duration
        record.first_successor = succ_ptr[task]
        record.resource = r
        preds_left[task] = pred_ptr[task + 1] - pred_ptr[task]
        if duration < 0 or (r >= 0 and duration < 1):
            durations_valid = False
        longest_cycles = max(longest_cycles, duration)
        total_cycles += duration
    records[n_tasks].first_successor = succ_ptr[n_tasks]
    return durations_valid, longest_cycles, total_cycles


@njit(cache=True)
def _max_in_degree(pred_ptr):
    """Largest row of the predecessor CSR, in one pass without np.diff's temporary array."""
    largest = 0
    for task in range(pred_ptr.shape[0] - 1):
        largest = max(largest, pred_ptr[task + 1] - pred_ptr[task])
    return largest


def predecessor_count_dtype(pred_ptr: np.ndarray) -> np.dtype:
    """int16 when every in-degree fits, else int32: half the bytes for the counts the
    main loop decrements at random, so more of them stay in the caches."""
    max_in_degree = _max_in_degree(np.ascontiguousarray(pred_ptr, dtype=np.int64))
    return np.dtype(np.int16 if max_in_degree <= np.iinfo(np.int16).max else np.int32)


def _cache_aligned_empty(n: int, dtype: np.dtype) -> np.ndarray:
    """Uninitialised array starting on a cache line, so no record or queue line straddles two."""
    raw = np.empty(n * dtype.itemsize + CACHE_LINE_BYTES, dtype=np.uint8)
    offset = -raw.ctypes.data % CACHE_LINE_BYTES
    return raw[offset:offset + n * dtype.itemsize].view(dtype)


@njit(cache=True)
def _add_lag_in_degrees(lag_succ, preds_left):
    """Count start-to-start predecessors too; returns the largest number of them into one task."""
    largest = 0
    for k in range(lag_succ.shape[0]):
        preds_left[lag_succ[k]] += 1
    for k in range(lag_succ.shape[0]):
        largest = max(largest, np.int64(preds_left[lag_succ[k]]))
    return largest


@dataclass(frozen=True)
class EngineInputs:
    """What the main loop reads of a graph, built by one numba pass."""
    records: np.ndarray  # TASK_RECORD [n_tasks + 1], the last holds only the end of the successors
    preds_left: np.ndarray  # int16 or int32 [n_tasks], predecessor counts of both edge kinds
    longest_cycles: int  # longest duration or lag
    total_cycles: int  # durations summed, plus the longest lag


def engine_inputs(tg: TaskGraph) -> EngineInputs:
    """Records and predecessor counts of a graph; ValueError on invalid durations
    or on a graph beyond the records' int32 fields."""
    n_edges = int(tg.succ_idx.shape[0])
    if n_edges > INT32_MAX:
        raise ValueError(f"TaskGraph too big for the fast engine's int32 successor offsets: {n_edges} edges")
    if tg.n_tasks + tg.n_lag_edges > INT32_MAX:
        raise ValueError(f"TaskGraph too big for the fast engine's int32 event ids: {tg.n_tasks} tasks, "
                         f"{tg.n_lag_edges} start-to-start edges")
    records = _cache_aligned_empty(tg.n_tasks + 1, TASK_RECORD)
    dtype = predecessor_count_dtype(tg.pred_ptr)
    if tg.n_lag_edges:  # counted in int32 first, narrowed when every total fits int16
        dtype = np.dtype(np.int32)
    preds_left = np.empty(tg.n_tasks, dtype=dtype)
    durations_valid, longest_cycles, total_cycles = _fill_records(
        np.ascontiguousarray(tg.resource, dtype=np.int32), np.ascontiguousarray(tg.duration_cycles, dtype=np.int64),
        np.ascontiguousarray(tg.pred_ptr, dtype=np.int64), np.ascontiguousarray(tg.succ_ptr, dtype=np.int64),
        records, preds_left)
    if not durations_valid:
        check_durations(tg)  # raises, with the message that names the broken rule
    if tg.n_lag_edges:
        if int(tg.lag_cycles.min()) < 1:
            check_durations(tg)
        largest = max(_add_lag_in_degrees(np.ascontiguousarray(tg.lag_succ, dtype=np.int32), preds_left),
                      _max_in_degree(np.ascontiguousarray(tg.pred_ptr, dtype=np.int64)))
        if largest <= np.iinfo(np.int16).max:
            preds_left = preds_left.astype(np.int16)
        longest_lag = int(tg.lag_cycles.max())
        longest_cycles = max(longest_cycles, longest_lag)
        total_cycles += longest_lag
    if longest_cycles > INT32_MAX:
        raise ValueError(f"TaskGraph task too long for the fast engine's int32 durations: {longest_cycles} cycles")
    return EngineInputs(records, preds_left, int(longest_cycles), int(total_cycles))


def calendar_window_cycles(longest_cycles: int) -> int:
    """Power of two above the longest duration or lag (so every event fits the calendar), within [64, MAX]."""
    return min(max(1 << longest_cycles.bit_length(), 64), MAX_WINDOW_CYCLES)


def _priority_keys(tg: TaskGraph) -> tuple[np.ndarray, int]:
    """(each task's priority shifted above the (cycle, id) bits of a queue key, or an empty
    array without priorities; the bits left below it for cycle << event_bits | id)."""
    if tg.priority is None:
        return np.zeros(0, dtype=np.int64), 63
    priority = np.ascontiguousarray(tg.priority, dtype=np.int64)
    if tg.n_tasks and int(priority.min()) < 0:
        check_durations(tg)  # raises, with the message that names the broken rule
    key_bits = 63 - (int(priority.max()).bit_length() if tg.n_tasks else 0)
    return priority << key_bits, key_bits


def simulate(tg: TaskGraph) -> Schedule:
    """Schedule the task graph with the numba list scheduler; same start cycles as engine.des."""
    event_bits = max((tg.n_tasks + tg.n_lag_edges).bit_length(), 1)
    inputs = engine_inputs(tg)
    priority_keys, key_bits = _priority_keys(tg)
    if inputs.total_cycles >> (key_bits - event_bits):  # the latest possible event must fit a key
        raise UserError(f"fast engine: {tg.n_tasks:,} tasks over up to {inputs.total_cycles:,} cycles do not fit "
                        "its 63-bit event keys; run fewer tokens or a coarser --chunk-tokens, or use --engine des "
                        "(exact, but about 100x slower)")
    # written now, not left empty: first touches (page faults) inside the loop cost more
    start_cycles = np.full(tg.n_tasks, -1, dtype=np.int64)
    makespan_cycles, n_started = _schedule(
        inputs.records, np.ascontiguousarray(tg.succ_idx, dtype=np.int32), inputs.preds_left, tg.n_resources,
        event_bits, calendar_window_cycles(inputs.longest_cycles), start_cycles,
        np.ascontiguousarray(tg.lag_ptr, dtype=np.int64), np.ascontiguousarray(tg.lag_succ, dtype=np.int32),
        np.ascontiguousarray(tg.lag_cycles, dtype=np.int64), priority_keys)
    if n_started < tg.n_tasks:
        raise ValueError("TaskGraph: some tasks never became ready (predecessor ids must be smaller)")
    return Schedule(start_cycles=start_cycles, makespan_cycles=int(makespan_cycles), engine="fast")
