"""Scenarios the platform ships, as data: ``seed_demo`` loads them into the demo city (once).

Each is checked on loading exactly as a scenario sent to the API. Offsets are seconds from the
start of the exercise.
"""

from typing import Any

_SERVICES_PRESENT = "Police (armed response), ambulance HART, fire and rescue"

STADIUM_ATTACK: dict[str, Any] = {
    "key": "mta-stadium-60",
    "name": "Marauding terrorist attack at the stadium (60 minutes)",
    "description": (
        "Attackers with bladed weapons and a firearm strike the crowd leaving an evening match "
        "at the national stadium and move towards the adjoining transport hub. Casualties rise, a "
        "second location is rumoured, the cell must consider military assistance, the media "
        "call, and the response turns to recovery. Trains strategic coordination from the first "
        "reports to recovery."
    ),
    "incident_title": "Marauding terrorist attack at the national stadium",
    "incident_type": "marauding_terrorist_attack",
    "incident_level": 3,
    "location_description": "National stadium and the adjoining transport hub",
    "injects": [
        {
            "offset_seconds": 0,
            "kind": "message",
            "title": "First calls: stabbings outside the stadium",
            "content": {
                "sender": "Police control room",
                "text": (
                    "Multiple 999 calls: people stabbed at the north gate as the crowd leaves "
                    "the match. Callers report at least two attackers, one possibly armed with "
                    "a gun. Armed response vehicles dispatched."
                ),
            },
        },
        {
            "offset_seconds": 180,
            "kind": "methane",
            "title": "First M/ETHANE from police",
            "content": {
                "major_incident_declared": False,
                "exact_location": "North gate of the national stadium, Stadium Way",
                "incident_type": "Suspected marauding terrorist attack, bladed weapons",
                "hazards": "Attackers still active; crowd surge; possible firearm",
                "access": "Stadium Way closed; rendezvous point at the south car park",
                "casualties_p1": 3,
                "casualties_p2": 5,
                "casualties_notes": "Early estimate, scene not yet safe",
                "emergency_services_present": "Police",
                "emergency_services_required": "Armed police, ambulance HART, fire and rescue",
            },
        },
        {
            "offset_seconds": 420,
            "kind": "activation",
            "title": "Stand up the strategic coordinating group",
            "content": {
                "message": (
                    "Strategic coordinating group to assemble now, virtual first, then at the "
                    "city emergency centre: marauding attack at the national stadium."
                ),
                "urgency": "immediate",
                "agencies": [],
            },
        },
        {
            "offset_seconds": 600,
            "kind": "methane",
            "title": "Major incident declared, casualties rising",
            "content": {
                "major_incident_declared": True,
                "exact_location": "North gate and concourse of the national stadium",
                "incident_type": "Marauding terrorist attack, bladed weapons and one firearm",
                "hazards": "One attacker at large towards the transport hub; crowd crush",
                "access": "Access from the south only; forward control point at gate 12",
                "casualties_fatal": 2,
                "casualties_p1": 6,
                "casualties_p2": 11,
                "casualties_p3": 24,
                "emergency_services_present": _SERVICES_PRESENT,
                "emergency_services_required": "Additional ambulances; hospitals on alert",
            },
        },
        {
            "offset_seconds": 900,
            "kind": "timeline",
            "title": "Transport hub evacuated",
            "content": {
                "text": "Transport operator suspends trains and evacuates the stadium station.",
                "category": "significant_event",
            },
        },
        {
            "offset_seconds": 1200,
            "kind": "message",
            "title": "Rumour of a second location",
            "content": {
                "sender": "Police intelligence",
                "text": (
                    "Social media reports of shots fired at the central shopping centre, 3 km "
                    "away. Unconfirmed. Officers checking; the cell should consider whether "
                    "to move resources."
                ),
            },
        },
        {
            "offset_seconds": 1500,
            "kind": "methane",
            "title": "Attackers neutralised; second location not confirmed",
            "content": {
                "major_incident_declared": True,
                "exact_location": "National stadium and stadium station",
                "incident_type": "Marauding terrorist attack, attackers neutralised",
                "hazards": "Suspected device in an abandoned bag at the station",
                "access": "Cordon 400 m around the station; access from the south",
                "casualties_fatal": 4,
                "casualties_p1": 8,
                "casualties_p2": 15,
                "casualties_p3": 40,
                "casualties_notes": "Shopping centre report found false",
                "emergency_services_present": _SERVICES_PRESENT,
                "emergency_services_required": "Explosive ordnance disposal",
            },
        },
        {
            "offset_seconds": 1800,
            "kind": "message",
            "title": "Military assistance to be considered",
            "content": {
                "sender": "Police strategic commander",
                "text": (
                    "Threat level may be raised nationally. The cell is asked to consider "
                    "requesting military assistance to guard key sites tonight: what would it "
                    "give, under which powers, and what are the alternatives?"
                ),
            },
        },
        {
            "offset_seconds": 2100,
            "kind": "message",
            "title": "Media enquiry",
            "content": {
                "sender": "Communications lead",
                "text": (
                    "National broadcaster asks for confirmation of the number of dead and "
                    "whether a second attack took place. Live at the top of the hour: a single "
                    "agreed public line is needed."
                ),
            },
        },
        {
            "offset_seconds": 2400,
            "kind": "timeline",
            "title": "Device made safe",
            "content": {
                "text": "Explosive ordnance disposal declare the bag at the station safe.",
                "category": "significant_event",
            },
        },
        {
            "offset_seconds": 2880,
            "kind": "methane",
            "title": "Scene stabilised",
            "content": {
                "major_incident_declared": True,
                "exact_location": "National stadium and stadium station",
                "incident_type": "Marauding terrorist attack, scene stabilised",
                "hazards": "Crime scene preservation; public anxiety",
                "access": "Inner cordon kept; station to reopen after forensic work",
                "casualties_fatal": 4,
                "casualties_p1": 9,
                "casualties_p2": 14,
                "casualties_p3": 42,
                "emergency_services_present": _SERVICES_PRESENT,
                "emergency_services_required": "None further",
            },
        },
        {
            "offset_seconds": 3300,
            "kind": "message",
            "title": "Recovery: reception centre and families",
            "content": {
                "sender": "Local authority",
                "text": (
                    "Families are arriving at the stadium. The local authority proposes a "
                    "family and friends reception centre and a humanitarian assistance plan; "
                    "the cell should agree the move to recovery and who leads it."
                ),
            },
        },
        {
            "offset_seconds": 3600,
            "kind": "timeline",
            "title": "Handover to the recovery coordinating group",
            "content": {
                "text": "Strategic coordinating group agrees handover to recovery at 08:00.",
                "category": "meeting",
            },
        },
    ],
}

BUILTIN_SCENARIOS: list[dict[str, Any]] = [STADIUM_ATTACK]
