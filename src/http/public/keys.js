// @ts-check
// The access keys: typed into the form, kept in sessionStorage (this tab only), applied at once.
import { els, showMessage } from './dom.js';
import { keys } from './http.js';
import { refreshStatus, updateAdminVisibility } from './status.js';
import { followEvents } from './timeline.js';

const KEY_STORAGE = { api: 'rag-console.apiKey', admin: 'rag-console.adminKey' };

/** The keys this tab saved earlier, into the form and into use. */
export function loadKeys() {
  try {
    keys.api = sessionStorage.getItem(KEY_STORAGE.api) ?? '';
    keys.admin = sessionStorage.getItem(KEY_STORAGE.admin) ?? '';
  } catch {
    /* storage disabled: keys live in memory only */
  }
  els.apiKey.value = keys.api;
  els.adminKey.value = keys.admin;
}

/**
 * Use the keys in the form; when they changed, fetch the status and reconnect the timeline with them.
 * @returns {boolean} whether they changed
 */
function applyKeys() {
  const api = els.apiKey.value.trim();
  const admin = els.adminKey.value.trim();
  const changed = api !== keys.api || admin !== keys.admin;
  keys.api = api;
  keys.admin = admin;
  try {
    /** @type {Array<[name: string, value: string]>} */
    const entries = [[KEY_STORAGE.api, api], [KEY_STORAGE.admin, admin]];
    for (const [name, value] of entries) {
      if (value) sessionStorage.setItem(name, value);
      else sessionStorage.removeItem(name);
    }
  } catch {
    /* storage disabled */
  }
  if (!changed) return false;
  showMessage(els.adminMessage, null);
  updateAdminVisibility();
  void refreshStatus();
  void followEvents();
  return true;
}

export function initKeys() {
  els.keysForm.addEventListener('submit', (e) => {
    e.preventDefault();
    applyKeys();
    showMessage(els.keysMessage, { title: 'Keys saved for this tab.' }, 'ok');
  });
  els.apiKey.addEventListener('change', () => applyKeys());
  els.adminKey.addEventListener('change', () => applyKeys());
  els.keysClear.addEventListener('click', () => {
    els.apiKey.value = '';
    els.adminKey.value = '';
    applyKeys();
    showMessage(els.keysMessage, { title: 'Keys cleared.' }, 'ok');
  });
}
