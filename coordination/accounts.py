"""A person's own account pages: changing the password ends every other session and token."""

from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect

from .services import user_password_change


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change page, with the change made by the service that also signs the
    person out everywhere else."""

    def form_valid(self, form):
        user = self.request.user
        user_password_change(
            user=user,
            target=user,
            password=form.cleaned_data["new_password1"],
            keep_session_key=self.request.session.session_key,
            request=self.request,
        )
        update_session_auth_hash(self.request, user)
        return HttpResponseRedirect(self.get_success_url())
