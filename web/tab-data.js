// Reading the tab's figures: the GraphQL documents, and the one place that knows how the API says
// "this district has no license yet".

import { ApiError, graphql } from "./api.js";

export const LICENSE_FIELDS = `
  status licensedTo legalEntityName used total remaining overage display level accessLevel
  createdAt expiresAt daysUntilExpiration lastSyncedAt stale
  rosterStatus { countsKnown }`;
export const SETTINGS_FIELDS = `
  studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax maximumThreshold`;
export const ALERT_FIELDS = "id kind severity message placements";

// The license is read on its own: while the district has none, the field fails, and that must not
// take usage, alerts and settings down with it.
const LICENSE_QUERY = `query LicensingTabLicense { license { ${LICENSE_FIELDS} } }`;
const REST_QUERY = `query LicensingTab($manage: Boolean!) {
  usage {
    activeStudents inactiveStudents staff devices
    rosterStatus { state countsKnown source since }
  }
  alerts(placement: LICENSE_BANNER) { ${ALERT_FIELDS} }
  licenseSettings @include(if: $manage) { ${SETTINGS_FIELDS} }
}`;

// How the API says a district has no license yet. Today the `license` field fails with this
// code; once `license` is nullable with a typed reason, read that reason here instead.
const NO_LICENSE_CODE = "LICENSE_NOT_AVAILABLE";

/** Whether a `license` answer means "no license has been received yet". */
export function licenseNotReceived(data, errors) {
  if (errors.some((error) => error.extensions?.code === NO_LICENSE_CODE)) return true;
  return Boolean(data) && "license" in data && data.license === null && errors.length === 0;
}

function failed(errors, requestId) {
  const code = errors[0]?.extensions?.code || "UNKNOWN";
  return new ApiError({ status: 200, code, requestId });
}

/** Everything the tab shows: {license (null when none yet), noLicense, usage, alerts, settings}.
 * Throws ApiError when the figures cannot be read. */
export async function readTab({ canManage }) {
  const [licenseAnswer, rest] = await Promise.all([
    graphql(LICENSE_QUERY),
    graphql(REST_QUERY, { manage: canManage }),
  ]);
  const noLicense = licenseNotReceived(licenseAnswer.data, licenseAnswer.errors);
  if (!noLicense && !licenseAnswer.data?.license) {
    throw failed(licenseAnswer.errors, licenseAnswer.requestId);
  }
  if (!rest.data || rest.errors.length) throw failed(rest.errors, rest.requestId);
  return {
    license: noLicense ? null : licenseAnswer.data.license,
    noLicense,
    usage: rest.data.usage,
    alerts: rest.data.alerts,
    settings: rest.data.licenseSettings || null,
  };
}
