// @ts-check
// The admin actions: POST /admin/reload (a forced rebuild) and POST /admin/rollback.
import { els, showMessage } from './dom.js';
import { apiError, asError, describeError, request } from './http.js';
import { refreshStatus } from './status.js';
/** @import { AdminActionResult, ReloadOutcome } from './wire.js' */

/** @type {Record<Exclude<ReloadOutcome, 'rejected'>, string>} */
const DONE_LABEL = { accepted: 'Reloaded', rolled_back: 'Rolled back', unchanged: 'Unchanged', superseded: 'Superseded' };

/** @param {'/admin/reload' | '/admin/rollback'} path @param {string} busyText */
async function adminAction(path, busyText) {
  els.reload.disabled = true;
  els.rollback.disabled = true;
  showMessage(els.adminMessage, { title: busyText }, 'info');
  try {
    const res = await request(path, { method: 'POST', kind: 'admin' });
    if (res.ok || res.status === 422) {
      const body = /** @type {AdminActionResult} */ (await res.json());
      const a = body.attempt;
      if (a?.outcome === 'rejected') {
        showMessage(els.adminMessage, { title: 'Rejected:', detail: `${a.error?.message ?? 'the new generation failed validation'}. The active generation keeps serving.`, code: a.error?.code }, 'error');
      } else {
        const label = (a && DONE_LABEL[a.outcome]) ?? 'Done';
        showMessage(els.adminMessage, { title: `${label}.`, detail: body.active ? `Serving store ${body.active.store.version} (generation ${body.active.id}).` : '' }, 'ok');
      }
    } else {
      showMessage(els.adminMessage, describeError(await apiError(res), 'admin'));
    }
  } catch (err) {
    showMessage(els.adminMessage, describeError(asError(err), 'admin'));
  } finally {
    els.reload.disabled = false;
    els.rollback.disabled = false;
    void refreshStatus();
  }
}

export function initAdmin() {
  els.reload.addEventListener('click', () => void adminAction('/admin/reload', 'Reloading…'));
  els.rollback.addEventListener('click', () => void adminAction('/admin/rollback', 'Rolling back…'));
}
