"""REST endpoints of the project shell: a token for a username and password, who am I, my teams."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from knox import views as knox_views
from rest_framework import serializers, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from lts_web.models import Membership, Team, teams_of
from lts_web.throttling import TokenThrottle, lockout_response


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role"]


class TeamSerializer(serializers.ModelSerializer):
    members = MembershipSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "created_at", "members"]


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    """The teams the caller belongs to, with their members and roles."""

    serializer_class = TeamSerializer
    queryset = Team.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self):
        return teams_of(self.request.user).prefetch_related("memberships__user").order_by("name")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    teams = serializers.ListField(child=serializers.DictField())


class MeView(APIView):
    """The authenticated user and their team roles."""

    serializer_class = MeSerializer

    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("team")
        teams = [{"id": m.team_id, "name": m.team.name, "role": m.role} for m in memberships]
        return Response({"id": request.user.id, "username": request.user.username, "teams": teams})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`; it is shown only now.")
    expiry = serializers.DateTimeField()


class ObtainTokenView(knox_views.LoginView):
    """A new API token for a username and password (form or JSON), valid for LTS_TOKEN_TTL_DAYS. Wrong passwords
    count towards the login lock-out: past LTS_LOGIN_FAILURE_LIMIT the answer is 429 with Retry-After."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (TokenThrottle,)
    serializer_class = AuthTokenSerializer

    @extend_schema(request=AuthTokenSerializer, responses={200: TokenSerializer})
    def post(self, request, format=None):
        # With the request in its context the serializer passes it to authenticate(), which axes needs.
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            # axes flags the request it was given (this DRF request), which its middleware does not see.
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request)
            raise ValidationError(serializer.errors)
        request.user = serializer.validated_data["user"]
        return super().post(request, format)


@extend_schema(request=None, responses={204: None})
class LogoutView(knox_views.LogoutView):
    """Revoke the token this request is sent with."""


@extend_schema(request=None, responses={204: None})
class LogoutAllView(knox_views.LogoutAllView):
    """Revoke all of the caller's tokens."""
