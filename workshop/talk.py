"""The talk's slides, mapped to the notebooks' sections: the one map the book's page and the presenter outlines use.

The talk is "Going Serverless on AWS with Golang & SAM" (7th Athens Gophers Meetup, George Tourkas),
138 slides. Each entry says which slides a notebook section retells; a section is named by its heading,
so that the map survives cells moving, and :func:`locate` finds the cell (a heading that is gone fails the
book's and the slides' builds, and their test, instead of leaving a stale map).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TALK", "Section", "locate", "sections", "slides_of"]

TALK = 'Going Serverless on AWS with Golang & SAM (7th Athens Gophers Meetup, George Tourkas)'


@dataclass(frozen=True)
class Section:
    slides: tuple[int, int]  # first and last slide, inclusive
    talk: str  # what those slides show
    notebook: str  # the notebook's stem
    heading: str  # the heading of the section that retells them ("" for the notebook's title)

    @property
    def slide_range(self) -> str:
        first, last = self.slides
        return str(first) if first == last else f"{first}–{last}"


_MAP = [
    ((1, 1), "title", "00_welcome", ""),
    ((19, 19), "the app: create photo thumbnails API", "00_welcome", "Look at what we build"),
    ((2, 3), "serverless == fully managed services", "01_managed_services", 'Weigh what "fully managed" buys'),
    ((4, 4), "S3", "01_managed_services", "Store objects in S3"),
    ((5, 5), "DynamoDB", "01_managed_services", "Keep state in DynamoDB"),
    ((6, 7), "API Gateway", "01_managed_services", "Put API Gateway in front"),
    ((8, 8), "SNS", "01_managed_services", "Fan out messages with SNS"),
    ((9, 10), "Lambda: memory, concurrency, timeout, invokers", "01_managed_services", "Run code with Lambda"),
    ((15, 16), "IAM", "01_managed_services", "Grant least privilege with IAM"),
    ((11, 11), "Lambda lifecycle", "02_lambda_lifecycle", "Separate init from the handler"),
    ((12, 12), "lifecycle: reuse processes", "02_lambda_lifecycle", "Reuse one environment for calls in a row"),
    ((13, 13), "lifecycle: spawn new processes", "02_lambda_lifecycle", "Spawn new environments for concurrent calls"),
    ((14, 14), "lifecycle: implications (in-process state, caching, connections)", "02_lambda_lifecycle",
     "Keep in-process state in mind"),
    ((32, 40), "Go lambda lifecycle: init() and main()", "02_lambda_lifecycle", "Measure what init costs"),
    ((17, 17), "SAM", "03_code_and_infra", "Read the template"),
    ((18, 26), "code & infra: the app's code", "03_code_and_infra", "Walk the source tree"),
    ((27, 28), "handler signatures, the event types", "03_code_and_infra", "Invoke each event type"),
    ((29, 31), "lambda dependencies", "03_code_and_infra", "List the dependencies"),
    ((41, 47), "handler namespace; one or many handlers; API proxy", "03_code_and_infra", "Choose one handler or many"),
    ((48, 53), "build: sam build and template.yaml", "04_build", "Build the functions"),
    ((54, 60), "run locally: API Gateway event", "05_run_locally", "Invoke a function with an API Gateway event"),
    ((61, 71), "run locally: SNS event", "05_run_locally", "Invoke the worker with an SNS event"),
    ((72, 77), "debug locally: one-off set-up (Delve, the IDE)", "06_debug_locally", "Attach from VS Code, PyCharm, and SAM"),
    ((78, 81), "typical vs SAM debug process", "06_debug_locally", "Compare the two debug processes"),
    ((82, 86), "step 1 compile, step 2 start the debugger", "06_debug_locally", "Start the debugger with the call"),
    ((87, 93), "deploy: packaging, deploying", "07_deploy", "Package the code into S3"),
    ((94, 94), "remote logs: tail, filter, time period", "07_deploy", "Read the remote logs"),
    ((95, 95), "gradual deployment: canary, linear, alarms", "07_deploy", "Roll out a new version gradually"),
    ((96, 96), "the source (thumbnailr)", "03_code_and_infra", "Walk the source tree"),
    ((97, 106), "performance: initial and later attempts", "08_performance", "Time the thumbnails against their floor"),
    ((107, 109), "cold start", "08_performance", "Collect a distribution of cold starts"),
    ((110, 118), "API GW + Lambda vs ALB + Lambda vs ALB + EC2", "08_performance", "Put three fronts before the same code"),
    ((119, 123), "cost: Lambda logs, billed duration", "09_cost", "Reproduce the talk's Lambda bill"),
    ((124, 126), "Lambda request and compute charges", "09_cost", "Reproduce the talk's Lambda bill"),
    ((127, 130), "memory vs time; Lambda power tuning", "09_cost", "Tune the create function's power"),
    ((131, 133), "transform, not transport", "09_cost", "Transform, not transport"),
    ((134, 136), "cost comparison", "09_cost", "Reproduce the talk's comparison"),
    ((137, 137), "free tier", "09_cost", "Subtract the free tier"),
    ((138, 138), "Q&A", "10_clean_up", "Recap"),
]


def sections() -> list[Section]:
    """Every mapped section, in the talk's order."""
    return sorted((Section(*entry) for entry in _MAP), key=lambda s: s.slides)


def slides_of(notebook: str) -> list[Section]:
    """The sections of one notebook (its stem), in the notebook's order once located."""
    return [s for s in sections() if s.notebook == notebook]


def _headings(cell_source: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2).strip()) for m in re.finditer(r"^(#{1,6})\s+(.+)$", cell_source, re.M)]


def locate(section: Section, notebook_path: Path) -> int:
    """The index of the cell that holds the section's heading (the title, for ""); KeyError when it is gone."""
    cells = json.loads(notebook_path.read_text())["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for level, text in _headings("".join(cell["source"])):
            if (section.heading == "" and level == 1) or text == section.heading:
                return index
    raise KeyError(f"{notebook_path.name} has no heading {section.heading!r} (the talk map in workshop/talk.py names it)")
