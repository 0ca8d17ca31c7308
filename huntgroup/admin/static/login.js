// The wallboard's sign-in: the token goes once, in an Authorization header, to /session,
// which answers with an HttpOnly cookie that opens the wallboard (read-only). The token
// is never put in a URL nor kept by this page.
"use strict";

document.getElementById("login").addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const field = document.getElementById("token");
  const error = document.getElementById("login-error");
  error.textContent = "";
  let answer;
  try {
    answer = await fetch("/session", {
      method: "POST",
      headers: { Authorization: "Bearer " + field.value.trim() },
      credentials: "same-origin",
    });
  } catch (failure) {
    error.textContent = "The server cannot be reached.";
    return;
  }
  field.value = "";
  if (answer.ok) {
    window.location.replace("/");
  } else if (answer.status === 401) {
    error.textContent = "Wrong token.";
  } else {
    error.textContent = "The server answered " + answer.status + ".";
  }
});
