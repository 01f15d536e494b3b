"""REST endpoints of the project shell: the API's root, a token for a username and password, who am I, my teams."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from knox import views as knox_views
from rest_framework import serializers, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
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


# The API's top-level endpoints, as GET /api/v1/ lists them: (name, what it holds); each is at /api/v1/<name>/.
# A test holds the list to the URLconf: a new top-level route must be added here.
API_ROOT = (
    ("searches", "search jobs of your teams: create one (POST), follow it, pause, resume, cancel, retry, "
     "clone, its frontier and exports"),
    ("candidates", "the architectures your teams' searches proposed, with their measurements; filter "
     "by job, frontier, ranges; ?job=ID&after=REVISION for what changed"),
    ("measurements", "the shared cache of latency and memory measurements, every device and job"),
    ("devices", "target devices, their profiling workers and queues; devices/{name}/predict/ and "
     "predictor/ for their cost models"),
    ("presets", "the preset search spaces with their size and proxy range"),
    ("architectures/preview", "POST an architecture config: its archid and parameter "
     "counts, or its field errors"),
    ("spaces/preview", "POST a search space or a preset name: its size and proxy range"),
    ("datasets", "training text of your teams: an upload, a folder under the data root or a hub dataset"),
    ("training-runs", "training runs of your teams with their live progress; create one (POST), "
     "cancel"),
    ("zoo-models", "trained and imported checkpoints with perplexity, proxy and cost; "
     "zoo-models/import/ takes a hub model, models/{id}/generate continues a prompt"),
    ("zoo-imports", "hub imports of your teams and their state"),
    ("proxy-checks", "how well the proxy ranks real perplexity on your data: sample, train, compare"),
    ("webhooks", "webhooks of your teams and their deliveries (search and training events)"),
    ("teams", "the teams you belong to, with their members and roles"),
    ("me", "you: your user and your team roles"),
    ("auth/token", "POST a username and password: a token for `Authorization: Token <key>`"),
    ("auth/logout", "POST: revoke the token the request is sent with"),
    ("auth/logoutall", "POST: revoke all of your tokens"),
)


class ApiRootView(APIView):
    """LTS Studio's REST API, version 1: each top-level endpoint below with what it holds.

    Sign in on the pages, or send `Authorization: Token <key>` (POST auth/token/ gives one). Lists are paged
    (`?limit=&offset=`); a bad field is a 400 `{"field": ["message", ...]}`, a change refused in an object's state a
    409. The OpenAPI schema is at /api/schema/, browsable at /api/docs/ and /api/redoc/.
    """

    @extend_schema(exclude=True)  # as DRF's own root view: the schema lists the endpoints themselves
    def get(self, request, format=None):
        root = reverse("api-root", request=request)
        return Response({name: {"url": f"{root}{name}/", "description": description}
                         for name, description in API_ROOT})
