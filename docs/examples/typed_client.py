"""The typed client ariadne-codegen generates from schema.graphql and operations.graphql:
the dashboard with typed enums, then every active student, page by page.
Needs a MANAGE_SETTINGS token (activeStudents), and `licensing_client/` generated beside it.

    M1T1_API=http://127.0.0.1:8000 M1T1_TOKEN=m1t1_... python typed_client.py
"""

import asyncio
import os

from licensing_client import Client, EnrollmentStatus, UsageLevel

API = os.environ.get("M1T1_API", "http://127.0.0.1:8000")
TOKEN = os.environ["M1T1_TOKEN"]


async def main() -> None:
    async with Client(url=f"{API}/graphql", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        dashboard = await client.dashboard()
        print(f"District {dashboard.viewer.district.name}")
        if dashboard.license is None:
            assert dashboard.license_unavailable is not None
            print(f"No license yet: {dashboard.license_unavailable.reason.value}")
        elif dashboard.license.level is UsageLevel.GREEN:
            print(f"Licenses {dashboard.license.display}: plenty left")
        else:
            print(
                f"Licenses {dashboard.license.display}: {dashboard.license.level.value}, look at the alerts"
            )

        counted, after = 0, None
        while True:
            page = await client.active_students_page(first=100, after=after)
            assert page.active_students is not None  # null only with an error, which raises
            # Typed enums: a value this client does not know yet fails validation, so regenerate
            # the client when the schema adds one.
            counted += sum(
                1 for s in page.active_students.nodes if s.status is EnrollmentStatus.ACTIVE
            )
            if not page.active_students.page_info.has_next_page:
                break
            after = page.active_students.page_info.end_cursor
        print(f"{counted} active students")


if __name__ == "__main__":
    asyncio.run(main())
