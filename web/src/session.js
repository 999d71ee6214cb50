// What the operator entered once for this tab: kept in sessionStorage (never a cookie), so that a
// change is sent with explicit headers and no other site can make the browser send it (no CSRF).
const KEYS = { readToken: 'tv.readToken', operatorToken: 'tv.operatorToken', operatorName: 'tv.operatorName' };

export function getSession() {
  return {
    readToken: sessionStorage.getItem(KEYS.readToken) || '',
    operatorToken: sessionStorage.getItem(KEYS.operatorToken) || '',
    operatorName: sessionStorage.getItem(KEYS.operatorName) || '',
  };
}

export function setSession(values) {
  for (const [k, storageKey] of Object.entries(KEYS)) {
    if (!(k in values)) continue;
    if (values[k]) sessionStorage.setItem(storageKey, values[k]);
    else sessionStorage.removeItem(storageKey);
  }
}

export const canOperate = (s) => Boolean(s.operatorToken && s.operatorName);
