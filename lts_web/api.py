"""REST endpoints of the project shell: who am I, my teams."""
from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from lts_web.models import Membership, Team, teams_of


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
