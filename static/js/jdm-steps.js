/*
 * The joint decision form, one Joint Decision Model step at a time.
 *
 * Without this script the form shows every step at once and works as a plain form. With it, one
 * fieldset is shown at a time with Back and Next buttons; Next checks the step's fields first.
 * Everything is reachable by keyboard: Tab through the fields and buttons, Enter in a one-line
 * field moves to the next step (and records the decision at the last one), focus moves to the
 * heading of each new step so screen readers announce it.
 */
(function () {
  "use strict";

  var form = document.querySelector("form[data-steps]");
  if (!form) return;
  var steps = Array.prototype.slice.call(form.querySelectorAll("fieldset[data-step]"));
  if (steps.length < 2) return;
  var nav = form.querySelector("[data-steps-nav]");
  var markers = nav ? Array.prototype.slice.call(nav.querySelectorAll("[data-step-marker]")) : [];
  var submitRow = form.querySelector("[data-submit-row]");
  var current = 0;

  // The script validates step by step; the browser's own check would stop at hidden fields.
  form.setAttribute("novalidate", "");
  form.classList.add("stepped");
  if (nav) nav.hidden = false;

  function makeButton(text, kind) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.dataset.stepAction = kind;
    if (kind === "next") button.className = "primary";
    return button;
  }

  steps.forEach(function (step, index) {
    var holder = step.querySelector("[data-step-buttons]");
    if (!holder) return;
    if (index > 0) {
      var back = makeButton("Back", "back");
      back.addEventListener("click", function () { show(index - 1, true); });
      holder.appendChild(back);
    }
    if (index < steps.length - 1) {
      var next = makeButton("Next: " + stepTitle(index + 1), "next");
      next.addEventListener("click", function () {
        if (stepValid(index, true)) show(index + 1, true);
      });
      holder.appendChild(next);
    } else if (submitRow) {
      holder.appendChild(submitRow); // the submit button belongs to the last step
    }
  });

  function stepTitle(index) {
    var legend = steps[index].querySelector("legend");
    var text = legend ? legend.textContent : "";
    return text.replace(/^Step \d+ of \d+:\s*/, "");
  }

  function fieldsOf(index) {
    return Array.prototype.slice.call(steps[index].querySelectorAll("input, textarea, select"));
  }

  function stepValid(index, report) {
    var fields = fieldsOf(index);
    for (var i = 0; i < fields.length; i++) {
      if (!fields[i].checkValidity()) {
        if (report) {
          fields[i].reportValidity();
          fields[i].focus();
        }
        return false;
      }
    }
    return true;
  }

  function show(index, moveFocus) {
    current = index;
    steps.forEach(function (step, i) { step.hidden = i !== index; });
    markers.forEach(function (marker, i) {
      if (i === index) marker.setAttribute("aria-current", "step");
      else marker.removeAttribute("aria-current");
      marker.classList.toggle("done", i < index);
    });
    if (moveFocus) {
      var first = steps[index].querySelector("input:not([type=hidden]), textarea, select");
      (first || steps[index].querySelector("legend")).focus();
    }
  }

  // Enter in a one-line field submits a form; here it means "next step" until the last one.
  form.addEventListener("submit", function (event) {
    if (current < steps.length - 1) {
      event.preventDefault();
      if (stepValid(current, true)) show(current + 1, true);
      return;
    }
    for (var i = 0; i < steps.length; i++) {
      if (!stepValid(i, false)) {
        event.preventDefault();
        show(i, false);
        stepValid(i, true);
        return;
      }
    }
  });

  // Links of the error summary above the form lead to fields that may sit in a hidden step.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('.form-errors a[href^="#"]');
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    var step = field && field.closest("fieldset[data-step]");
    if (!step) return;
    event.preventDefault();
    show(steps.indexOf(step), false);
    field.focus();
  });

  // After the server refused something, open the first step holding an error.
  var start = 0;
  for (var i = 0; i < steps.length; i++) {
    if (steps[i].querySelector(".has-error")) { start = i; break; }
  }
  show(start, false);
})();
