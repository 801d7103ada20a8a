"""The support-ticket models the Django tests share (the ticket platform of issue 16)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        app_label = "tickets"


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        app_label = "tickets"


class Ticket(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, default="open")
    priority = models.IntegerField(default=0)
    tags = models.ManyToManyField(Tag, related_name="tickets", blank=True)

    class Meta:
        app_label = "tickets"


class TicketComment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    body = models.TextField()

    class Meta:
        app_label = "tickets"


class TicketAttachment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=200)

    class Meta:
        app_label = "tickets"


class TicketSummary(models.Model):
    """A one-to-one relation (the SQL tests' select_related for both directions)."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="summary")
    text = models.TextField(default="")

    class Meta:
        app_label = "tickets"
