"""A third-party roster source, shipped as its own package.

It imports nothing from the Licensing API: the hook marker comes from pluggy with the project
name, and records are plain mappings with StudentRecord's keys. Its roster is a JSON file of
people, the way a small SIS might export it.
"""

import json
from pathlib import Path

import pluggy

hookimpl = pluggy.HookimplMarker("licensing")


class ExampleSisSource:
    name = "example_sis"
    description = "People from an Example SIS JSON export."

    def fetch_students(self, *, district, options):
        export = json.loads(Path(options["path"]).read_text(encoding="utf-8"))
        for person in export["people"]:
            yield {
                "source_id": person["id"],
                "role": person.get("role", "student"),
                "status": "active" if person.get("enrolled", True) else "withdrawn",
                "person_key": person.get("student_number"),
                "schools": tuple(person.get("schools", ())),
            }


@hookimpl
def register_roster_sources(settings):
    return [ExampleSisSource()]
