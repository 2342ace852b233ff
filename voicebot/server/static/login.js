// Only a page of this server may follow the login: "?next=https://evil.example" or "/%09/evil.example" (the
// browser drops the tab and reads "//evil.example") must not redirect off-site, so next is resolved as the
// browser would and its origin compared.
function nextPage(role) {
  const fallback = role === "agent" ? "/agent" : "/supervisor";
  const next = new URLSearchParams(location.search).get("next");
  if (!next || !next.startsWith("/")) return fallback;
  let url;
  try {
    url = new URL(next, location.origin);
  } catch (e) {
    return fallback;
  }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : fallback;
}
const form = document.getElementById("login");
const error = document.getElementById("error");
const submit = document.getElementById("submit");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  submit.disabled = true;
  try {
    const res = await fetch("/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      credentials: "same-origin",
      body: JSON.stringify({username: form.username.value.trim(), password: form.password.value}),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      error.textContent = body.detail || `Login failed (${res.status})`;
      return;
    }
    location.assign(nextPage(body.role));
  } catch (e) {
    error.textContent = "The server cannot be reached.";
  } finally {
    submit.disabled = false;
  }
});
