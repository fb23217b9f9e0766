// Reading the tab's figures (the TAB_QUERY document in operations.js), and the one place that
// knows how the API says "this district has no license yet".

import { ApiError, graphql } from "./api.js";
import { TAB_QUERY } from "./operations.js";

/** Why the district has no license yet (licenseUnavailable.reason: NOT_REQUESTED,
 * UPDATE_FAILED or NOT_RECEIVED), or null when it has one. `license` is null exactly then. */
export function licenseNotReceived(data) {
  if (!data || data.license !== null) return null;
  return data.licenseUnavailable?.reason || "NOT_RECEIVED";
}

function failed(errors, requestId) {
  const code = errors[0]?.extensions?.code || "UNKNOWN";
  return new ApiError({ status: 200, code, requestId });
}

/** Everything the tab shows: {license (null when none yet), noLicense (the reason, or null),
 * usage, alerts, settings}. Throws ApiError when the figures cannot be read. */
export async function readTab({ canManage }) {
  const { data, errors, requestId } = await graphql(TAB_QUERY, { manage: canManage });
  if (!data || errors.length) throw failed(errors, requestId);
  const noLicense = licenseNotReceived(data);
  if (!noLicense && !data.license) throw failed(errors, requestId);
  return {
    license: data.license,
    noLicense,
    usage: data.usage,
    alerts: data.alerts,
    settings: data.licenseSettings || null,
  };
}
