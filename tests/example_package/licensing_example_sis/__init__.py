"""A third-party roster source, shipped as its own package.

It imports only the service's public plugin API, ``manage1to1_plugins``; its records are plain
mappings with StudentRecord's keys. Its roster is a JSON file of people, the way a small SIS
might export it.
"""

import json
from pathlib import Path

from manage1to1_plugins import DistrictRef, PluginHost, RosterSource, SourceOptions, hookimpl


class ExampleSisOptions(SourceOptions):
    path: Path


class ExampleSisSource:
    name = "example_sis"
    description = "People from an Example SIS JSON export."
    options_model = ExampleSisOptions

    def fetch_students(self, *, district: DistrictRef, options: ExampleSisOptions):
        export = json.loads(options.path.read_text(encoding="utf-8"))
        for person in export["people"]:
            yield {
                "source_id": person["id"],
                "role": person.get("role", "student"),
                "status": "active" if person.get("enrolled", True) else "withdrawn",
                "person_key": person.get("student_number"),
                "schools": tuple(person.get("schools", ())),
            }


@hookimpl
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [ExampleSisSource()]
