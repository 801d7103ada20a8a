"""The seeder's tables (`perfkit.demo.app.models`) as Django models: `managed = False` and the same table
and column names, so one seeder fills the data both demo apps read."""

from __future__ import annotations

from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        db_table = "organizations"
        managed = False


class User(models.Model):
    organization = models.ForeignKey(Organization, models.DO_NOTHING, related_name="users")
    name = models.CharField(max_length=100)
    email = models.CharField(max_length=200)

    class Meta:
        db_table = "users"
        managed = False


class Ticket(models.Model):
    organization = models.ForeignKey(Organization, models.DO_NOTHING, related_name="tickets")
    requester = models.ForeignKey(User, models.DO_NOTHING, related_name="requested")
    assignee = models.ForeignKey(User, models.DO_NOTHING, null=True, related_name="assigned")
    status = models.CharField(max_length=20)
    priority = models.CharField(max_length=10)
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "tickets"
        managed = False


class TicketComment(models.Model):
    ticket = models.ForeignKey(Ticket, models.DO_NOTHING, related_name="comments")
    author = models.ForeignKey(User, models.DO_NOTHING, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "ticket_comments"
        managed = False
        ordering = ["id"]  # `ticket.comments.all()` in id order, as the FastAPI app's relationship


class Notification(models.Model):
    """One message sent to one user (the bulk-notification pair writes these)."""

    organization = models.ForeignKey(Organization, models.DO_NOTHING, related_name="+")
    user = models.ForeignKey(User, models.DO_NOTHING, related_name="+")
    message = models.CharField(max_length=200)
    sent_at = models.DateTimeField()

    class Meta:
        db_table = "notifications"
        managed = False
