"""A chunk's result travels through Step Functions as JSON between the chunk and merge tasks."""

from __future__ import annotations

import dataclasses
import json

from sklambda.batch import ByteRange, ChunkResult

RESULT = ChunkResult(
    index=2,
    byte_range=ByteRange(1024, 2048),
    status="succeeded",
    rows_read=10,
    rows_scored=9,
    rows_rejected=1,
    physical_lines=11,
    scored_key="tmp/j/scored-000002",
    errors_key="tmp/j/errors-000002.jsonl",
    model_version="3",
    reject_threshold=0.1,
    duration_seconds=0.5,
    data_quality_warnings={"out_of_range": 4},
)


def test_a_chunk_result_reads_back_from_the_json_the_state_machine_carries() -> None:
    # GIVEN a result as the chunk task returns it (dataclasses.asdict, then JSON)
    data = json.loads(json.dumps(dataclasses.asdict(RESULT)))
    # THEN the merge task reads back the same result
    assert ChunkResult.from_dict(data) == RESULT


def test_a_result_written_before_the_rename_to_data_quality_warnings_still_merges() -> None:
    # GIVEN a result from a chunk task deployed before the field was renamed (a map running across a deploy)
    data = json.loads(json.dumps(dataclasses.asdict(RESULT)))
    data["data_quality"] = data.pop("data_quality_warnings")
    # THEN its warnings are read under the new name
    assert ChunkResult.from_dict(data) == RESULT
